package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRestartToMusic parks PARKSWITCH_BENCH_PARKED calls (default
// 1,000) on the real binary, kills it with SIGKILL and starts it again on
// the same state: it reports how long after the new process was started
// each parked party hears music again (p50, p99, max) and how many did.
// It runs once whatever b.N is.
func BenchmarkRestartToMusic(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("PARKSWITCH_BENCH_PARKED")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	sipPort, httpPort := freeUDPPort(b), freeUDPPort(b)
	cfg := strings.Replace(strings.Replace(baseConfig, "%d", "10000", 1), "%d", "19999", 1)
	cfg = strings.Replace(cfg, "  domain: contoso.com\n", "  domain: contoso.com\n"+
		"  sip_listen: [\"udp://127.0.0.1:"+strconv.Itoa(sipPort)+"\"]\n"+
		"  http_listen: \"127.0.0.1:"+strconv.Itoa(httpPort)+"\"\n", 1)
	cfg += "state:\n  data_dir: state\n  node_id: bench\n"
	path := filepath.Join(dir, "parkswitch.yaml")
	writeFile(b, path, cfg)
	writeFile(b, filepath.Join(dir, "policies.yaml"), strings.Replace(basePolicies,
		"  - identity: DemoPark\n    allow_call_park: true\n",
		"  - identity: DemoPark\n    allow_call_park: true\n    pickup_range_start: 5000\n    pickup_range_end: 6999\n    park_timeout_seconds: 1800\n", 1))
	api := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	sipAddr := "127.0.0.1:" + strconv.Itoa(sipPort)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	first, _ := serveBinary(b, ctx, path, api)

	parked := parkMany(b, ctx, sipAddr, n)
	waitUntil(b, 30*time.Second, "every orbit listed", func() bool { return len(getOrbits(b, api)) == n })
	time.Sleep(time.Second) // the last dialog snapshots are written behind
	first.Process.Kill()
	first.Wait()

	b.ResetTimer()
	start := time.Now()
	_, logs := serveBinary(b, ctx, path, api)
	base := make([]uint64, n)
	for i, c := range parked {
		base[i] = c.RTPReceived()
	}
	// Music is back for a call once it got the re-INVITE and 5 packets.
	back := make([]time.Duration, n)
	got := 0
	deadline := time.Now().Add(60 * time.Second)
	reinvited := make([]bool, n)
	for got < n && time.Now().Before(deadline) {
		for i, c := range parked {
			if back[i] != 0 {
				continue
			}
			select {
			case <-c.ReInvites():
				reinvited[i] = true
				base[i] = c.RTPReceived()
			default:
			}
			if reinvited[i] && c.RTPReceived()-base[i] >= 5 {
				back[i] = time.Since(start)
				got++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	if got < n {
		for i, c := range parked {
			if back[i] == 0 {
				b.Logf("call %s: re-INVITEd %v, %d packets since, ended %v", c.CallID(), reinvited[i], c.RTPReceived()-base[i], c.EndReason())
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, c.CallID()) {
						b.Log(line)
					}
				}
			}
		}
	}
	var ds []time.Duration
	for _, d := range back {
		if d != 0 {
			ds = append(ds, d)
		}
	}
	slices.Sort(ds)
	b.ReportMetric(float64(len(ds)), "calls-with-music")
	b.ReportMetric(float64(n), "parked")
	if len(ds) > 0 {
		q := func(f float64) float64 { return ds[min(len(ds)-1, int(f*float64(len(ds))))].Seconds() }
		b.ReportMetric(q(0.5), "music-p50-s")
		b.ReportMetric(q(0.99), "music-p99-s")
		b.ReportMetric(ds[len(ds)-1].Seconds(), "music-max-s")
	}
	for _, c := range parked {
		c.Hangup(ctx)
	}
}
