package park

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/policy"
)

// fakeClock is a Clock whose time moves only by Advance, which runs the due
// callbacks in deadline order on the caller's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Time
	seq int
	f   func()
}

var epoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// Advance moves time forward by d, running each timer that falls due at its
// own instant.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		i := -1
		for j, t := range c.timers {
			if !t.at.After(end) && (i < 0 || t.at.Before(c.timers[i].at) || t.at.Equal(c.timers[i].at) && t.seq < c.timers[i].seq) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := c.timers[i]
		c.timers = slices.Delete(c.timers, i, i+1)
		if t.at.After(c.now) { // a concurrent Advance may have gone further
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	if end.After(c.now) {
		c.now = end
	}
	c.mu.Unlock()
}

// Pending is the number of armed timers.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// ring is one Ring call of the fakeRinger, answered by the test.
type ring struct {
	o      *Orbit
	target string
	d      time.Duration
	ctx    context.Context
	claim  func() bool
	act    chan RingResult // NoAnswer or Answered, sent by the test
	result chan RingResult // what Ring returned
	// ctxErr is ctx.Err() right after a winning claim: the answerer is
	// still to be connected, so it must be nil.
	ctxErr error
}

// answer makes the target pick up; it returns what Ring returned.
func (r *ring) answer(t *testing.T) RingResult {
	t.Helper()
	r.act <- Answered
	return recv(t, r.result)
}

// noAnswer lets the ring time out; it returns what Ring returned.
func (r *ring) noAnswer(t *testing.T) RingResult {
	t.Helper()
	r.act <- NoAnswer
	return recv(t, r.result)
}

// fakeRinger hands every Ring call to the test and blocks it until the test
// acts or ctx is cancelled. With deaf set it ignores ctx, so that a test can
// make an answer arrive after a retrieve.
type fakeRinger struct {
	rings    chan *ring
	abandons chan *Orbit
	nAband   atomic.Int32
	deaf     atomic.Bool
}

func newFakeRinger() *fakeRinger {
	return &fakeRinger{rings: make(chan *ring, 64), abandons: make(chan *Orbit, 64)}
}

func (f *fakeRinger) Ring(ctx context.Context, o *Orbit, target string, d time.Duration, claim func() bool) RingResult {
	r := &ring{o: o, target: target, d: d, ctx: ctx, claim: claim, act: make(chan RingResult, 1), result: make(chan RingResult, 1)}
	f.rings <- r
	done := ctx.Done()
	if f.deaf.Load() {
		done = nil
	}
	res := Cancelled
	select {
	case a := <-r.act:
		res = a
		if a == Answered {
			if claim() {
				r.ctxErr = ctx.Err()
			} else {
				res = Lost
			}
		}
	case <-done:
	}
	r.result <- res
	return res
}

func (f *fakeRinger) Abandon(o *Orbit) {
	f.nAband.Add(1)
	f.abandons <- o
}

// recorder keeps the events of a lot in order.
type recorder struct {
	mu  sync.Mutex
	all []Event
	ch  chan Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan Event, 1<<16)} }

func (r *recorder) on(e Event) {
	r.mu.Lock()
	r.all = append(r.all, e)
	r.mu.Unlock()
	r.ch <- e
}

// expect reads the next events and checks their kinds.
func (r *recorder) expect(t *testing.T, kinds ...EventKind) []Event {
	t.Helper()
	evs := make([]Event, len(kinds))
	for i, k := range kinds {
		evs[i] = recv(t, r.ch)
		if evs[i].Kind != k {
			t.Fatalf("event %d = %s (%+v), want %s", i, evs[i].Kind, evs[i], k)
		}
	}
	return evs
}

// none checks that no event is waiting.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case e := <-r.ch:
		t.Fatalf("unexpected event %s %+v", e.Kind, e)
	default:
	}
}

// recv waits for a value the lot's goroutines produce; the timeout only
// turns a hang into a failure.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for the lot")
		var zero T
		return zero
	}
}

// fakeCall is a parked party's call.
type fakeCall string

func (c fakeCall) CallID() string { return string(c) }

var callSeq atomic.Int64

func newCall() fakeCall { return fakeCall("call-" + strconv.FormatInt(callSeq.Add(1), 10)) }

var (
	alice = Party{User: "1001", Display: "Alice", URI: "sip:1001@contoso.com"}
	ken   = Party{User: "ken.myer", Display: "Ken Myer", URI: "sip:ken.myer@contoso.com"}
)

// pol is an allowing policy with range [start,end] and a 300 s timeout.
func pol(identity string, start, end int) policy.Policy {
	p := policy.Default(identity)
	p.AllowCallPark = true
	p.PickupRangeStart, p.PickupRangeEnd = start, end
	return p
}

type harness struct {
	lot    *Lot
	clock  *fakeClock
	ringer *fakeRinger
	ev     *recorder
}

// newHarness builds a lot on a fake clock and ringer, closed at the end of
// the test.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(), ringer: newFakeRinger(), ev: newRecorder()}
	h.lot = NewLot(h.clock, cfg, h.ringer, h.ev.on)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.lot.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func (h *harness) park(t *testing.T, p policy.Policy) *Orbit {
	t.Helper()
	o, err := h.lot.Park(context.Background(), p, newCall(), alice, ken)
	if err != nil {
		t.Fatalf("Park in %s: %v", p.Identity, err)
	}
	return o
}

// contextWithTimeout bounds a wait on the lot so that a hang fails the test.
func contextWithTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// autoRinger settles every ring at once, in turn answered, unanswered, and
// cancelled when ctx already is, to stir ringbacks into a concurrent test.
type autoRinger struct{ n atomic.Int64 }

func (a *autoRinger) Ring(ctx context.Context, o *Orbit, target string, d time.Duration, claim func() bool) RingResult {
	switch a.n.Add(1) % 3 {
	case 0:
		if claim() {
			return Answered
		}
		return Lost
	case 1:
		return NoAnswer
	}
	if ctx.Err() != nil {
		return Cancelled
	}
	return NoAnswer
}

func (a *autoRinger) Abandon(o *Orbit) {}

// atomicCounter numbers the goroutines of a parallel benchmark.
type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int { return int(c.n.Add(1)) }
