package park

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store/natsstore"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

// BenchmarkClusterParkRate parks and retrieves as fast as it can from two
// lots on their own connections to a three-server NATS cluster (R3), for
// PARKSWITCH_BENCH_SECONDS (default 30) whatever b.N is, with 8 parks in
// flight per node, each held 2 ms before it is retrieved. It reports the sustained parks per second and the
// duplicates seen: codes held by two orbits at once (must be 0).
func BenchmarkClusterParkRate(b *testing.B) {
	secs := 30
	if v, err := strconv.Atoi(os.Getenv("PARKSWITCH_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	servers := natstest.StartCluster(b, 3)
	var lots []*Lot
	for i, node := range []string{"a", "b"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := natsstore.Open(ctx, natsstore.Options{URLs: []string{servers[i].URL()}, NodeID: node, Logger: zerolog.Nop()})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		l := NewLot(RealClock(), Config{}, nopRinger{}, nil)
		l.Share(st, node, zerolog.Nop())
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l.Close(ctx)
			l.Release(ctx)
		})
		lots = append(lots, l)
	}
	p := pol("Park", 100, 999)
	var (
		mu       sync.Mutex
		held     = map[int]string{}
		parks    atomic.Int64
		dups     atomic.Int64
		failures atomic.Int64
	)
	b.ResetTimer()
	start := time.Now()
	stop := start.Add(time.Duration(secs) * time.Second)
	var wg sync.WaitGroup
	for i, l := range lots {
		node := string(rune('a' + i))
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					o, err := l.Park(ctx, p, newCall(), alice, ken)
					cancel()
					if err != nil {
						failures.Add(1)
						continue
					}
					parks.Add(1)
					mu.Lock()
					if held[o.Code()] != "" {
						dups.Add(1)
					}
					held[o.Code()] = node
					mu.Unlock()
					time.Sleep(2 * time.Millisecond) // parked a moment: another node's park of this code would show
					mu.Lock()
					delete(held, o.Code())
					mu.Unlock()
					if _, err := l.Retrieve(p, o.Code(), ken); err != nil {
						failures.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(parks.Load())/elapsed.Seconds(), "parks/s")
	b.ReportMetric(float64(dups.Load()), "duplicates")
	b.ReportMetric(float64(failures.Load()), "failures")
	b.ReportMetric(elapsed.Seconds(), "seconds")
}
