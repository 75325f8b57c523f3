package park

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// liveCodes follows the lot through its events, which arrive one at a time
// in the order the tables changed, and fails on a code handed out twice.
type liveCodes struct {
	t            *testing.T
	live         map[string]map[int]bool // by folded policy
	parks        atomic.Int64
	ends         atomic.Int64
	ringbackEnds atomic.Int64 // answered or abandoned
}

func (lc *liveCodes) on(e Event) {
	key := strings.ToLower(e.Orbit.Policy)
	switch e.Kind {
	case EventPark:
		lc.parks.Add(1)
		if lc.live[key] == nil {
			lc.live[key] = map[int]bool{}
		}
		if lc.live[key][e.Orbit.Code] {
			lc.t.Errorf("code %d of %s handed out while in use", e.Orbit.Code, e.Orbit.Policy)
		}
		lc.live[key][e.Orbit.Code] = true
	case EventRetrieve, EventHangup, EventRingbackAnswered, EventAbandon:
		lc.ends.Add(1)
		if e.Kind == EventRingbackAnswered || e.Kind == EventAbandon {
			lc.ringbackEnds.Add(1)
		}
		if !lc.live[key][e.Orbit.Code] {
			lc.t.Errorf("%s of code %d of %s, which was not in use", e.Kind, e.Orbit.Code, e.Orbit.Policy)
		}
		delete(lc.live[key], e.Orbit.Code)
	}
}

func TestConcurrentParkRetrieve(t *testing.T) {
	tests := []struct {
		name      string
		ringbacks bool // workers also move the clock, so that orbits ring back meanwhile
	}{
		{"park and retrieve", false},
		{"with ringbacks", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { concurrentParkRetrieve(t, tt.ringbacks) })
	}
}

func concurrentParkRetrieve(t *testing.T, ringbacks bool) {
	const workers, rounds = 200, 40
	pols := [2]struct{ start, end int }{{10, 59}, {500, 549}} // 50 codes each for 100 workers each: full ranges happen
	sales, support := pol("Sales", pols[0].start, pols[0].end), pol("Support", pols[1].start, pols[1].end)
	lc := &liveCodes{t: t, live: map[string]map[int]bool{}}
	clock := newFakeClock()
	lot := NewLot(clock, Config{MaxRingbacks: 2, Fallback: "operator"}, &autoRinger{}, lc.on)

	var claimed sync.Map // *Orbit → who claimed it
	var full, stolen atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			p := sales
			if w%2 == 1 {
				p = support
			}
			for range rounds {
				o, err := lot.Park(context.Background(), p, newCall(), alice, ken)
				if errors.Is(err, ErrRangeFull) {
					full.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if !p.InRange(o.Code()) {
					t.Errorf("code %d outside %s's range", o.Code(), p.Identity)
				}
				if ringbacks && rng.IntN(4) == 0 {
					clock.Advance(time.Duration(rng.IntN(400)) * time.Second)
				}
				switch rng.IntN(3) {
				case 0: // the parker's colleague picks it up, unless a thief did
					// A thief may have taken o and its code gone to another
					// call since: the retrieve then gets that call.
					got, err := lot.Retrieve(p, o.Code(), Party{})
					if err == nil && (got.Code() != o.Code() || got.Policy() != p.Identity) {
						t.Errorf("Retrieve(%s, %d) returned %s %d", p.Identity, o.Code(), got.Policy(), got.Code())
					}
					if err == nil {
						if _, dup := claimed.LoadOrStore(got, "owner"); dup {
							t.Errorf("orbit %d claimed twice", got.Code())
						}
					} else if !errors.Is(err, ErrNoOrbit) {
						t.Error(err)
					}
				case 1: // a thief dials a code at random in either policy
					q := sales
					if rng.IntN(2) == 1 {
						q = support
					}
					c := q.PickupRangeStart + rng.IntN(q.PickupRangeEnd-q.PickupRangeStart+1)
					if got, err := lot.Retrieve(q, c, Party{}); err == nil {
						stolen.Add(1)
						if got.Policy() != q.Identity || got.Code() != c {
							t.Errorf("Retrieve(%s, %d) returned %s %d", q.Identity, c, got.Policy(), got.Code())
						}
						if _, dup := claimed.LoadOrStore(got, "thief"); dup {
							t.Errorf("orbit %d claimed twice", got.Code())
						}
					}
				}
				// Whatever happened, the parked party hangs up in the end.
				lot.Hangup(o.Call())
			}
		})
	}
	wg.Wait()

	for _, p := range []string{"sales", "SUPPORT"} {
		if n := lot.InUse(p); n != 0 {
			t.Errorf("%d orbits of %s left after every call ended", n, p)
		}
	}
	if clock.Pending() != 0 {
		t.Errorf("%d timers left", clock.Pending())
	}
	// Nothing lost: each range can be filled again, every code once.
	for i, p := range []struct {
		name       string
		start, end int
	}{{"Sales", pols[0].start, pols[0].end}, {"Support", pols[1].start, pols[1].end}} {
		q := pol(p.name, p.start, p.end)
		seen := map[int]bool{}
		for range p.end - p.start + 1 {
			o, err := lot.Park(context.Background(), q, newCall(), alice, ken)
			if err != nil {
				t.Fatalf("refilling %s: %v after %d parks", p.name, err, len(seen))
			}
			seen[o.Code()] = true
		}
		if len(seen) != p.end-p.start+1 {
			t.Errorf("refilling %s gave %d distinct codes", p.name, len(seen))
		}
		if _, err := lot.Park(context.Background(), q, newCall(), alice, ken); !errors.Is(err, ErrRangeFull) {
			t.Errorf("policy %d: park into a full range: %v", i, err)
		}
	}
	ctx, cancel := contextWithTimeout()
	defer cancel()
	if err := lot.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ends, parks := lc.ends.Load(), lc.parks.Load(); parks-ends != 100 {
		t.Errorf("%d parks and %d ends: %d orbits unaccounted for", parks, ends, parks-ends-100)
	}
	t.Logf("%d parks, %d refused as full, %d taken by a thief, %d ended by ringbacks", lc.parks.Load(), full.Load(), stolen.Load(), lc.ringbackEnds.Load())
}

// Two retrievers dialing the same code at once: exactly one gets the call.
// So too for a retriever and the parker answering the ringback.
func TestClaimRace(t *testing.T) {
	p := pol("Sales", 10, 99)
	tests := []struct {
		name    string
		ringing bool
	}{
		{"two retrievers", false},
		{"retriever and ringback answer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.ringer.deaf.Store(true) // let the answer arrive after the retrieve
			for i := range 300 {
				o := h.park(t, p)
				var bid func() bool
				if tt.ringing {
					h.clock.Advance(p.ParkTimeout())
					r := recv(t, h.ringer.rings)
					bid = func() bool { return r.answer(t) == Answered }
				} else {
					bid = func() bool { _, err := h.lot.Retrieve(p, o.Code(), Party{}); return err == nil }
				}
				var wins atomic.Int32
				var wg sync.WaitGroup
				start := make(chan struct{})
				for _, claim := range []func() bool{bid, func() bool { _, err := h.lot.Retrieve(p, o.Code(), Party{}); return err == nil }} {
					wg.Go(func() {
						<-start
						if claim() {
							wins.Add(1)
						}
					})
				}
				close(start)
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("round %d: %d claims won, want exactly 1", i, wins.Load())
				}
				if h.lot.InUse(p.Identity) != 0 {
					t.Fatalf("round %d: orbit still in the table", i)
				}
			}
		})
	}
}

func TestClose(t *testing.T) {
	p := pol("Sales", 10, 99)
	t.Run("cancels a ringback and waits for it", func(t *testing.T) {
		h := newHarness(t, Config{})
		o := h.park(t, p)
		waiting := h.park(t, p)
		h.clock.Advance(p.ParkTimeout())
		r := recv(t, h.ringer.rings)
		recv(t, h.ringer.rings) // the second orbit rings too
		ctx, cancel := contextWithTimeout()
		defer cancel()
		if err := h.lot.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if r.ctx.Err() == nil {
			t.Error("Close returned with a ringback still going")
		}
		if got := recv(t, r.result); got != Cancelled {
			t.Errorf("ring ended %s, want cancelled", got)
		}
		if o.State() != StateParked || waiting.State() != StateParked || h.clock.Pending() != 0 {
			t.Errorf("after Close: states %s %s, %d timers", o.State(), waiting.State(), h.clock.Pending())
		}
		if _, err := h.lot.Park(context.Background(), p, newCall(), alice, ken); !errors.Is(err, ErrClosed) {
			t.Errorf("Park after Close: %v", err)
		}
		if _, err := h.lot.Retrieve(p, o.Code(), Party{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Retrieve after Close: %v", err)
		}
		if len(h.lot.Orbits()) != 2 {
			t.Errorf("orbits after Close = %+v", h.lot.Orbits())
		}
		h.lot.Hangup(o.Call())
		h.lot.Hangup(waiting.Call())
		if len(h.lot.Orbits()) != 0 {
			t.Error("Hangup after Close left an orbit")
		}
		h.clock.Advance(24 * time.Hour)
		if h.ringer.nAband.Load() != 0 || len(h.ringer.rings) != 0 {
			t.Error("the lot acted after Close")
		}
	})
	t.Run("gives up waiting with ctx and can wait again", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.ringer.deaf.Store(true) // a ringer slow to notice
		o := h.park(t, p)
		h.clock.Advance(p.ParkTimeout())
		r := recv(t, h.ringer.rings)
		ctx, cancel := contextWithTimeout()
		cancel()
		if err := h.lot.Close(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close with a cancelled ctx while a ring is going: %v", err)
		}
		if got := r.answer(t); got != Lost {
			t.Errorf("an answer after Close ended %s, want lost", got)
		}
		ctx, cancel = contextWithTimeout()
		defer cancel()
		if err := h.lot.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if o.State() != StateParked {
			t.Errorf("state = %s", o.State())
		}
		h.lot.Hangup(o.Call())
	})
	t.Run("timer fired as Close stopped it", func(t *testing.T) {
		h := newHarness(t, Config{})
		o := h.park(t, p)
		// Take the timer's callback out of the clock as if it had fired, run
		// it after Close: it must neither ring nor block Close.
		h.clock.mu.Lock()
		fired := h.clock.timers[0]
		h.clock.timers = nil
		h.clock.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := h.lot.Close(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close returned %v while a timer callback was due", err)
		}
		fired.f()
		ctx, cancel = contextWithTimeout()
		defer cancel()
		if err := h.lot.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if o.State() != StateParked || len(h.ringer.rings) != 0 {
			t.Errorf("a timer run after Close rang: state %s", o.State())
		}
		h.lot.Hangup(o.Call())
	})
}

func TestRealClock(t *testing.T) {
	c := RealClock()
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Errorf("Now is %v away", d)
	}
	fired := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(fired) })
	recv(t, fired)
	if c.AfterFunc(time.Hour, func() { t.Error("stopped timer fired") }).Stop() != true {
		t.Error("Stop of a pending timer returned false")
	}
}
