package natsstore

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// BenchmarkOrbit measures one park's worth of store work on the embedded
// server and on a 3-server loopback cluster: create-if-absent of an orbit,
// a compare-and-set update (a ringback cycle), and the claim (a
// compare-and-set delete, as a retrieve does). It reports p50/p99 of each.
func BenchmarkOrbit(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		benchOrbit(b, open(b, Options{DataDir: b.TempDir(), NodeID: "bench"}))
	})
	b.Run("cluster3", func(b *testing.B) {
		servers := startCluster(b, 3)
		benchOrbit(b, open(b, Options{URLs: urls(servers), NodeID: "bench"}))
	})
}

func benchOrbit(b *testing.B, s *Store) {
	ctx := context.Background()
	pol := "Bench" + strconv.Itoa(b.N)
	var create, update, claim []time.Duration
	b.ResetTimer()
	for i := range b.N {
		o := store.Orbit{Policy: pol, Code: 10 + i%9000, CallID: "c" + strconv.Itoa(i), State: "parked", Owner: "bench"}
		t0 := time.Now()
		o, err := s.CreateOrbit(ctx, o)
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		o.State, o.Ringbacks = "ringing", 1
		o, err = s.UpdateOrbit(ctx, o)
		t2 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.DeleteOrbit(ctx, o); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		create, update, claim = append(create, t1.Sub(t0)), append(update, t2.Sub(t1)), append(claim, t3.Sub(t2))
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"create", create}, {"cas", update}, {"claim", claim}} {
		p50, p99 := percentile(m.d, 0.50), percentile(m.d, 0.99)
		b.ReportMetric(float64(p50.Microseconds()), m.name+"-p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), m.name+"-p99-µs")
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

// BenchmarkEmbeddedMemory reports what opening the embedded store adds
// to the process (Go heap in use and RSS), empty and holding 1,000 orbits
// with their dialogs.
func BenchmarkEmbeddedMemory(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		heap0, rss0 := memory()
		s := open(b, Options{DataDir: b.TempDir(), NodeID: "mem"})
		heap1, rss1 := memory()
		for i := range 1000 {
			if _, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Mem", Code: 10 + i, CallID: "c" + strconv.Itoa(i)}); err != nil {
				b.Fatal(err)
			}
			d := store.Dialog{CallID: "c" + strconv.Itoa(i), LocalTag: "t", LocalSDP: strings.Repeat("a=x\r\n", 40), RemoteSDP: strings.Repeat("a=y\r\n", 40)}
			if _, err := s.PutDialog(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
		heap2, rss2 := memory()
		b.ReportMetric(float64(heap1-heap0)/(1<<20), "open-heap-MiB")
		b.ReportMetric(float64(rss1-rss0)/(1<<20), "open-rss-MiB")
		b.ReportMetric(float64(heap2-heap0)/(1<<20), "1k-orbits-heap-MiB")
		b.ReportMetric(float64(rss2-rss0)/(1<<20), "1k-orbits-rss-MiB")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// memory is the Go heap in use after a collection, and the resident set
// size from /proc (0 where there is none).
func memory() (heap, rss int64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	heap = int64(m.HeapInuse)
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return heap, rss
}
