// Package overload sheds new work when the switch falls behind, in the
// manner of RFC 7339's loss-based control: a share of new requests is
// admitted and the rest are refused at once, which costs a small part of
// the call each would have become. The share follows how long runnable
// goroutines wait for a CPU: while that wait's 99th percentile, smoothed
// over a few intervals, is over the target and not falling, the share is
// cut by a factor, a cut at most every few intervals; while it is under
// half the target the share rises by a step each interval. A switch
// offered more calls than its CPUs take therefore keeps completing about
// as many as they do, with their latency, instead of falling into
// retransmissions that add to the load that caused them.
package overload

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Control steps. The share falls fast (a quarter of it at a time, each
// cut given settle intervals to show) and comes back slowly (a fiftieth of
// all calls each interval under half the target: five seconds from
// nothing to everything), so a switch that is still behind does not swing
// back into collapse.
const (
	DefaultInterval = 100 * time.Millisecond
	decrease        = 0.75
	increase        = 0.02
	// smoothing is the weight of the newest interval in the wait the
	// control acts on: one interval's spike (a collection cycle, a burst)
	// moves it a quarter of the way, a wait that persists moves it all.
	smoothing = 0.25
	// settle is how many intervals a cut is given to show in the wait
	// before the next: runnable goroutines queued before it still have
	// to run, and the smoothing lags.
	settle = 3
	// settleMargin is how far under the smoothed wait a wait must be to
	// count as falling: the histogram's buckets are coarse, and a wait
	// that repeats its bucket is not a cut at work.
	settleMargin = 0.1
)

// Control decides which new requests are admitted. The zero value and nil
// admit everything. It is safe for concurrent use.
type Control struct {
	target time.Duration
	seed   maphash.Seed // keys' places, which a caller cannot predict

	// admitted is share's bits, read on every new request without mu.
	admitted atomic.Uint64

	mu    sync.Mutex
	share float64 // of new requests admitted, in [0, 1]
	wait  float64 // smoothed 99th percentile, in seconds
	calm  int     // intervals left before another cut may be made
}

// New returns a control that sheds while the scheduling wait's smoothed
// 99th percentile is over target; target 0 disables it.
func New(target time.Duration) *Control {
	c := &Control{target: target, share: 1, seed: maphash.MakeSeed()}
	c.admitted.Store(math.Float64bits(1))
	return c
}

// Shedding reports whether some new requests are refused now: when it is
// false, Admit admits every key, and a caller need not look at the request.
func (c *Control) Shedding() bool {
	return c != nil && c.target > 0 && math.Float64frombits(c.admitted.Load()) < 1
}

// Admit reports whether the new request of key (its Call-ID) may be taken
// on. The answer is the key's: each key has its place in [0, 1), and those
// under the share are admitted. So every request of one call gets the
// same answer while the share holds: a retransmitted INVITE that crossed
// its 503 is refused again rather than set up behind the caller's back,
// and a caller's retry with credentials is admitted like the request that
// drew the challenge. A key admitted stays admitted as the share rises.
func (c *Control) Admit(key string) bool {
	if !c.Shedding() {
		return true
	}
	share := math.Float64frombits(c.admitted.Load())
	place := float64(maphash.String(c.seed, key)>>11) / (1 << 53)
	return place < share
}

// Observe is one control step, given the scheduling wait's 99th percentile
// over the interval just past. It returns the share admitted from now on.
func (c *Control) Observe(p99 time.Duration) float64 {
	if c == nil {
		return 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A wait that fell below the smoothed one shows that the last cut is
	// working: cutting again before it has worked through the smoothing
	// would overshoot, and the share swing from too little to too much.
	improving := p99.Seconds() < c.wait*(1-settleMargin)
	if c.calm > 0 {
		c.calm--
	}
	c.wait += smoothing * (p99.Seconds() - c.wait)
	wait := time.Duration(c.wait * float64(time.Second))
	switch {
	case c.target <= 0:
		c.share = 1
	case wait > c.target && (improving || c.calm > 0):
		// hold
	case wait > c.target:
		c.share *= decrease
		c.calm = settle
		if c.share < increase/4 {
			c.share = 0 // a remainder this small is noise; the rise starts from 0
		}
	case wait < c.target/2:
		c.share = min(1, c.share+increase)
	}
	c.admitted.Store(math.Float64bits(c.share))
	return c.share
}

// State is the share admitted and the smoothed wait it follows.
func (c *Control) State() (share float64, wait time.Duration) {
	if c == nil {
		return 1, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.share, time.Duration(c.wait * float64(time.Second))
}

// Target is the wait over which the control sheds (0: it never does).
func (c *Control) Target() time.Duration {
	if c == nil {
		return 0
	}
	return c.target
}

// Run observes sample every interval until ctx is done, calling changed
// (when not nil) after each step with the share and the smoothed wait.
func (c *Control) Run(ctx context.Context, interval time.Duration, sample func() time.Duration, changed func(share float64, wait time.Duration)) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	sample() // the wait so far is not this interval's
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			share := c.Observe(sample())
			if changed != nil {
				_, wait := c.State()
				changed(share, wait)
			}
		}
	}
}
