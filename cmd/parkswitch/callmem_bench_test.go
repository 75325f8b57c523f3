package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
)

// BenchmarkActiveCallMemory is the switch's memory per answered call, SIP
// dialog and transaction state included: PARKSWITCH_BENCH_CALLS calls
// (default 2,000) from a SIPp trunk caller to a SIPp answering phone (a
// static contact) through the real server, held while its heap is read.
//
//   - B/call: live Go heap (after a collection) and goroutine stacks with every call up, less
//     what they were before the first call, over the calls. The INVITE
//     transactions of the calls are still kept then (RFC 6026: 32 s after
//     the 2xx), as they are on a switch taking new calls all the time.
//   - B/call-settled: the same 35 s later, the transactions gone.
//
// PARKSWITCH_BENCH_HEAP=file writes a heap profile at the settled reading.
//
// goroutines/call counts those running with every call up.
//
// Each call has two relay endpoints (four sockets); their kernel socket
// buffers are not in these figures.
func BenchmarkActiveCallMemory(b *testing.B) {
	requireSipp(b)
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("PARKSWITCH_BENCH_CALLS")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		benchActiveCalls(b, n)
	}
}

func benchActiveCalls(b *testing.B, n int) {
	dir := b.TempDir()
	trunkPort, uasPort := freeUDPPort(b), freeUDPPort(b)
	writeFile(b, filepath.Join(dir, "policies.yaml"), "policies:\n  - identity: Global\n")
	writeFile(b, filepath.Join(dir, "parkswitch.yaml"), fmt.Sprintf(`
server:
  domain: contoso.com
media:
  rtp_port_min: 40000
  rtp_port_max: %d
  rtp_timeout_seconds: 0
park:
  policy_file: policies.yaml
users:
  - id: 2000@contoso.com
    password: bench-not-used
    contact: sip:2000@127.0.0.3:%d
trunks:
  - name: carrier
    address: 127.0.0.2:%d
    transport: udp
`, 40000+4*n+3, uasPort, trunkPort))
	cfg, err := config.Load(filepath.Join(dir, "parkswitch.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := newServer(cfg, zerolog.New(os.Stderr).Level(zerolog.WarnLevel), serverOptions{
		sipListen: []config.Listen{{Network: "udp", Addr: "127.0.0.1:0"}}, httpListen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.shutdown(ctx)
	}()
	used := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	before, g0 := used(), runtime.NumGoroutine()

	hold := 50 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), hold+2*time.Minute)
	defer cancel()
	uas := startSipp(b, ctx, "-timeout", "300s", "-sn", "uas", "-i", "127.0.0.3", "-p", strconv.Itoa(uasPort), "-buff_size", "4194304")
	time.Sleep(300 * time.Millisecond)
	uac := startSipp(b, ctx, "-timeout", "300s", srv.sw.Addr("udp").String(), "-sn", "uac", "-s", "2000",
		"-i", "127.0.0.2", "-p", strconv.Itoa(trunkPort), "-r", "500", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n),
		"-d", strconv.Itoa(int(hold/time.Millisecond)), "-buff_size", "4194304")
	deadline := time.Now().Add(hold / 2)
	for srv.sw.ActiveCalls() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d calls up after %v", srv.sw.ActiveCalls(), n, hold/2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	up, g1 := used(), runtime.NumGoroutine()
	time.Sleep(35 * time.Second)
	if got := srv.sw.ActiveCalls(); got != n {
		b.Fatalf("%d of %d calls still up before the settled reading", got, n)
	}
	settled := used()
	if path := os.Getenv("PARKSWITCH_BENCH_HEAP"); path != "" {
		// Where the settled calls' memory is: go tool pprof -sample_index=inuse_space
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	b.ReportMetric(float64(int64(up)-int64(before))/float64(n), "B/call")
	b.ReportMetric(float64(int64(settled)-int64(before))/float64(n), "B/call-settled")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/call")
	if err := uac.cmd.Wait(); err != nil {
		b.Fatalf("sipp uac: %v\n%s", err, tail(uac.out.String(), 2000))
	}
	uas.cmd.Process.Kill()
	uas.cmd.Wait()
}
