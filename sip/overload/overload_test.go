package overload

import (
	"context"
	"math"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestObserve(t *testing.T) {
	const target = 40 * time.Millisecond
	tests := []struct {
		name  string
		waits []time.Duration // one per interval
		share float64         // after the last
	}{
		{"keeping up", []time.Duration{time.Millisecond, 3 * time.Millisecond, 0}, 1},
		// One interval's spike moves the smoothed wait a quarter of the
		// way: 67 ms once (a collection cycle) sheds nothing.
		{"one spike", []time.Duration{2 * time.Millisecond, 67 * time.Millisecond, 2 * time.Millisecond}, 1},
		// 100 ms from the start: 25 ms smoothed, under the target.
		{"first interval behind", []time.Duration{100 * time.Millisecond}, 1},
		// 25, 43.75 ms: over the target once.
		{"behind", []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}, 0.75},
		// A cut is given three intervals to show before the next.
		{"still behind", []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}, 0.75},
		{"behind for long", repeat(100*time.Millisecond, 6), 0.5625},
		// Between half the target and the target the share holds.
		{"holding", []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 0}, 0.75}, // 32.8 ms
		// Still over the target, but the last cut is working (the wait
		// fell under the smoothed one): no further cut.
		// (Cuts at the 2nd and 5th; the 60 ms waits after are over the
		// target, and the last comes after the three intervals' calm.)
		{"cut working", append(repeat(100*time.Millisecond, 5), repeat(60*time.Millisecond, 4)...), 0.5625},
		// Far behind for long: the share goes to nothing, not to a
		// remainder that admits a call now and then.
		{"far behind", repeat(time.Second, 100), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(target)
			var share float64
			for _, w := range tt.waits {
				share = c.Observe(w)
			}
			if math.Abs(share-tt.share) > 1e-9 {
				t.Fatalf("share %v, want %v", share, tt.share)
			}
		})
	}
}

func TestRecovery(t *testing.T) {
	c := New(40 * time.Millisecond)
	for range 100 {
		c.Observe(time.Second)
	}
	if share, _ := c.State(); share != 0 {
		t.Fatalf("share %v after 10 s far behind, want 0", share)
	}
	// The smoothed wait takes some intervals to fall under 20 ms; then
	// the share rises by a fiftieth an interval.
	steps := 0
	for share := 0.0; share < 1; steps++ {
		if steps > 100 {
			t.Fatal("no recovery in 10 s of idle intervals")
		}
		share = c.Observe(0)
	}
	// 1 s → 20 ms smoothed takes 14 intervals (0.75^14 = 0.018), then 50 more.
	if steps < 60 || steps > 70 {
		t.Fatalf("recovered in %d intervals, want 60–70 (fast fall, slow rise)", steps)
	}
	for i := range 50 {
		if !c.Admit(strconv.Itoa(i)) {
			t.Fatal("a call refused after recovery")
		}
	}
}

func TestAdmitByKey(t *testing.T) {
	const keys = 10000
	for _, share := range []float64{1, 0.75, 0.5, 0.25, 0} {
		c := New(time.Millisecond)
		c.setShare(share)
		got := 0
		for i := range keys {
			k := "call-" + strconv.Itoa(i)
			admitted := c.Admit(k)
			if admitted {
				got++
			}
			// Every request of one call gets the same answer.
			if c.Admit(k) != admitted {
				t.Fatalf("share %v: %s admitted and refused", share, k)
			}
		}
		if frac := float64(got) / keys; math.Abs(frac-share) > 0.03 {
			t.Errorf("share %v: admitted %d of %d", share, got, keys)
		}
	}
	// A key admitted stays admitted as the share rises.
	c := New(time.Millisecond)
	c.setShare(0.3)
	var admitted []string
	for i := range 1000 {
		if k := strconv.Itoa(i); c.Admit(k) {
			admitted = append(admitted, k)
		}
	}
	c.setShare(0.6)
	for _, k := range admitted {
		if !c.Admit(k) {
			t.Fatalf("%s admitted at 0.3, refused at 0.6", k)
		}
	}
}

func TestDisabled(t *testing.T) {
	var none *Control
	for _, c := range []*Control{none, New(0)} {
		c.Observe(time.Hour)
		if !c.Admit("x") {
			t.Fatal("a disabled control refused")
		}
	}
	if New(0).Target() != 0 || none.Target() != 0 {
		t.Fatal("disabled control has a target")
	}
}

func TestQuantile(t *testing.T) {
	// As the runtime's: an underflow bucket up to 0 first.
	buckets := []float64{math.Inf(-1), 0, 0.001, 0.01, 0.1, math.Inf(1)}
	tests := []struct {
		name   string
		counts []uint64
		prev   []uint64
		q      float64
		want   time.Duration
	}{
		{"none", []uint64{0, 0, 0, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0.99, 0},
		{"all fast", []uint64{0, 1000, 0, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0.99, time.Millisecond},
		{"one slow in a hundred", []uint64{0, 990, 0, 10, 0}, []uint64{0, 0, 0, 0, 0}, 0.99, time.Millisecond},
		{"two slow in a hundred", []uint64{0, 980, 0, 20, 0}, []uint64{0, 0, 0, 0, 0}, 0.99, 100 * time.Millisecond},
		// Only what happened since the last read counts.
		{"old waits forgotten", []uint64{0, 1000, 0, 500, 0}, []uint64{0, 0, 0, 500, 0}, 0.99, time.Millisecond},
		// The open-ended last bucket stands at its lower bound.
		{"beyond the last bound", []uint64{0, 0, 0, 0, 500}, []uint64{0, 0, 0, 0, 0}, 0.5, 100 * time.Millisecond},
		// Too few waits to speak of: a switch with little to do, however
		// long its one wait.
		{"too few", []uint64{0, 0, 0, 0, minWaits - 1}, []uint64{0, 0, 0, 0, 0}, 0.99, 0},
		{"just enough", []uint64{0, 0, 0, 0, minWaits}, []uint64{0, 0, 0, 0, 0}, 0.99, 100 * time.Millisecond},
		// Waits that the clock could not tell from none.
		{"underflow", []uint64{1000, 0, 0, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0.99, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.counts, tt.prev, buckets, tt.q); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSchedWaitSeesBusyCPUs makes thousands of goroutines runnable at
// once on one CPU that stays busy for 5 ms more: each waits at least that
// long, which the runtime's histogram (of one transition in eight) must
// show.
func TestSchedWaitSeesBusyCPUs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const waiters = 4000
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
		}()
	}
	runtime.Gosched() // let them all block on start
	w := NewSchedWait(0.99)
	w.Sample()
	close(start)
	for end := time.Now().Add(5 * time.Millisecond); time.Now().Before(end); {
	}
	wg.Wait()
	if got := w.Sample(); got < 4*time.Millisecond {
		t.Fatalf("99th percentile wait %v for %d goroutines kept 5 ms from the CPU, want ≥ 4 ms", got, waiters)
	}
	// Idle since: too few waits to speak of.
	time.Sleep(10 * time.Millisecond)
	if got := w.Sample(); got != 0 {
		t.Fatalf("wait %v over an idle interval, want 0", got)
	}
}

func TestRunStops(t *testing.T) {
	c := New(40 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	steps := make(chan float64, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, time.Millisecond, func() time.Duration { return time.Second }, func(share float64, _ time.Duration) {
			select {
			case steps <- share:
			default:
			}
		})
	}()
	for share := 1.0; share > 0.5; share = <-steps {
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	admitted := 0
	for i := range 1000 {
		if c.Admit(strconv.Itoa(i)) {
			admitted++
		}
	}
	if admitted > 600 {
		t.Fatalf("%d of 1,000 admitted at a share under one half", admitted)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// setShare puts c at share, as Observe would have.
func (c *Control) setShare(share float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.share = share
	c.admitted.Store(math.Float64bits(share))
}
