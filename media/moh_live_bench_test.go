//go:build linux

package media

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMusicOnHoldLive is music on hold as the switch plays it: Run's
// real 20 ms clock, each parked call's own relay endpoint, and a listener
// socket of its own for each, in a second process (this test binary
// started again) so that the CPU measured here is the sender's alone. One
// op is one run of PARKSWITCH_BENCH_MOH_SECONDS [10] with
// PARKSWITCH_BENCH_MOH_LISTENERS [5000]; use -benchtime 1x.
//
//   - cores: user+system CPU of this process over the run, per second;
//     sys-cores: the system part of it.
//   - pkt/s-min, pkt/s-avg: packets a second the least served listener
//     heard, and the mean (50 is every packet).
//   - late-p99-ms, late-max-ms: how late packets arrived against their
//     listener's schedule (its first packet + 20 ms a sequence number),
//     loopback delivery and the listener process's scheduling included.
//   - receiver-cores: the listener process's CPU, for scale.
//
// The endpoints take ports 10000-20999; the listeners take ephemeral ports.
func BenchmarkMusicOnHoldLive(b *testing.B) {
	n := envInt(b, "PARKSWITCH_BENCH_MOH_LISTENERS", 5000)
	secs := envInt(b, "PARKSWITCH_BENCH_MOH_SECONDS", 10)
	for b.Loop() {
		r := runMusicLive(b, n, time.Duration(secs)*time.Second)
		b.ReportMetric(r.cores, "cores")
		b.ReportMetric(r.sysCores, "sys-cores")
		b.ReportMetric(r.heard.MinRate, "pkt/s-min")
		b.ReportMetric(r.heard.AvgRate, "pkt/s-avg")
		b.ReportMetric(r.heard.LateP99ms, "late-p99-ms")
		b.ReportMetric(r.heard.LateMaxms, "late-max-ms")
		b.ReportMetric(r.heard.CPUSeconds/r.heard.Seconds, "receiver-cores")
	}
}

type musicLive struct {
	cores    float64
	sysCores float64 // of cores, the kernel's share
	heard    heardStats
}

// heardStats is what the listener process reports, as JSON.
type heardStats struct {
	Packets    int64   `json:"packets"`
	Seconds    float64 `json:"seconds"`
	MinRate    float64 `json:"min_rate"`
	AvgRate    float64 `json:"avg_rate"`
	LateP99ms  float64 `json:"late_p99_ms"`
	LateMaxms  float64 `json:"late_max_ms"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

func runMusicLive(b *testing.B, n int, d time.Duration) musicLive {
	b.Helper()
	recv := exec.Command(os.Args[0], "-test.run=^TestMusicListenerProcess$", "-test.bench=^$", "-test.count=1")
	recv.Env = append(os.Environ(), "PARKSWITCH_MOH_LISTENERS="+strconv.Itoa(n))
	recv.Stderr = os.Stderr
	stdin, err := recv.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := recv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		b.Fatal(err)
	}
	defer recv.Wait()
	defer recv.Process.Kill()
	out := bufio.NewScanner(stdout)
	var sinks []netip.AddrPort
	for len(sinks) < n && out.Scan() {
		port, err := strconv.Atoi(out.Text())
		if err != nil {
			b.Fatalf("listener process: %q", out.Text())
		}
		sinks = append(sinks, netip.AddrPortFrom(loopback, uint16(port)))
	}
	if len(sinks) < n {
		b.Fatalf("listener process gave %d of %d ports: %v", len(sinks), n, out.Err())
	}

	pool, err := NewPortPool(loopback, 10000, 20999)
	if err != nil {
		b.Fatal(err)
	}
	m := testMusic(b)
	eps := make([]*Endpoint, 0, n)
	defer func() {
		for _, e := range eps {
			e.Close()
		}
	}()
	for i := range n {
		e, err := pool.Open()
		if err != nil {
			b.Skipf("%d of %d port pairs: %v", len(eps), n, err)
		}
		eps = append(eps, e)
		e.SetRemote(sinks[i], false)
		f := PCMU
		if i%2 == 1 {
			f = PCMA
		}
		if _, err := m.Attach(e, f); err != nil {
			b.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	m.Run(ctx)
	elapsed := float64(time.Since(start))
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	sys := float64(ru1.Stime.Nano() - ru0.Stime.Nano())

	stdin.Close() // the listeners report once the music has stopped
	var r musicLive
	r.cores = (float64(ru1.Utime.Nano()-ru0.Utime.Nano()) + sys) / elapsed
	r.sysCores = sys / elapsed
	if !out.Scan() {
		b.Fatalf("listener process: no report: %v", out.Err())
	}
	if err := json.Unmarshal(out.Bytes(), &r.heard); err != nil {
		b.Fatalf("listener process: %q: %v", out.Text(), err)
	}
	return r
}

// TestMusicListenerProcess is BenchmarkMusicOnHoldLive's listener side,
// run only as its second process: it opens PARKSWITCH_MOH_LISTENERS
// sockets, prints their ports, and once its input ends prints what they
// heard as one line of JSON. The kernel stamps each datagram's arrival
// (SO_TIMESTAMPNS) and one goroutine empties every socket each
// listenerSweep, so the listeners' own scheduling neither delays what
// they measure nor wakes a thread per packet.
func TestMusicListenerProcess(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("PARKSWITCH_MOH_LISTENERS"))
	if err != nil {
		t.Skip("the listener side of BenchmarkMusicOnHoldLive")
	}
	const listenerSweep = 50 * time.Millisecond
	// Plain descriptors, outside the runtime's poller: an arrival wakes
	// no epoll waiter, which would be charged to the sender's sendto.
	fds := make([]int, n)
	defer func() {
		for _, fd := range fds {
			if fd > 0 {
				syscall.Close(fd)
			}
		}
	}()
	w := bufio.NewWriter(os.Stdout)
	for i := range fds {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: loopback.As4()}); err != nil {
			t.Fatal(err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
			t.Fatal(err)
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w, sa.(*syscall.SockaddrInet4).Port)
	}
	w.Flush()

	const maxLate = 200 // ms, the histogram's last bucket
	type heard struct {
		packets    int64
		seq0       uint16
		first, end time.Time
	}
	var late [maxLate + 1]int64
	results := make([]heard, n)
	buf, oob := make([]byte, 1500), make([]byte, 128)
	drain := func(i int) {
		h := &results[i]
		for {
			k, oobn, _, _, err := syscall.Recvmsg(fds[i], buf, oob, syscall.MSG_DONTWAIT)
			if err != nil {
				return // EAGAIN: empty until the next sweep
			}
			if k < rtpHeaderLen {
				continue
			}
			at, ok := arrival(oob[:oobn])
			if !ok {
				t.Error("a datagram without its arrival time")
				return
			}
			seq := binary.BigEndian.Uint16(buf[2:4])
			if h.packets == 0 {
				h.first, h.seq0 = at, seq
			}
			h.packets++
			h.end = at
			due := h.first.Add(time.Duration(seq-h.seq0) * frameDuration)
			late[min(max(0, int(at.Sub(due)/time.Millisecond)), maxLate)]++
		}
	}
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		tick := time.NewTicker(listenerSweep)
		defer tick.Stop()
		for {
			for i := range fds {
				drain(i)
			}
			select {
			case <-stop:
				for i := range fds { // what came since the last sweep
					drain(i)
				}
				return
			case <-tick.C:
			}
		}
	}()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	started := time.Now()
	bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark closes it
	time.Sleep(100 * time.Millisecond)         // the last packets in flight
	close(stop)
	<-swept
	seconds := time.Since(started).Seconds()
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)

	s := heardStats{Seconds: seconds,
		CPUSeconds: time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()).Seconds()}
	rates := make([]float64, 0, n)
	for i := range results {
		h := &results[i]
		s.Packets += h.packets
		rate := 0.0
		if h.packets > 1 {
			rate = float64(h.packets-1) / h.end.Sub(h.first).Seconds()
		}
		rates = append(rates, rate)
	}
	slices.Sort(rates)
	if len(rates) > 0 {
		s.MinRate = rates[0]
		var sum float64
		for _, r := range rates {
			sum += r
		}
		s.AvgRate = sum / float64(len(rates))
	}
	var seen int64
	for j, c := range late {
		if c == 0 {
			continue
		}
		if seen < s.Packets*99/100 {
			s.LateP99ms = float64(j)
		}
		seen += c
		s.LateMaxms = float64(j)
	}
	line, _ := json.Marshal(s)
	fmt.Fprintln(w, string(line))
	w.Flush()
}

// arrival is the kernel's receive time in a datagram's control messages.
func arrival(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
