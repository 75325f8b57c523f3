package park

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRingback(t *testing.T) {
	p := pol("Sales", 10, 99) // 300 s timeout
	const timeout = 300 * time.Second

	// ringing advances to the deadline and returns the ring of the parker.
	ringing := func(t *testing.T, h *harness, o *Orbit) *ring {
		t.Helper()
		h.clock.Advance(timeout)
		r := recv(t, h.ringer.rings)
		if r.o != o || r.target != ken.User || o.State() != StateRinging {
			t.Fatalf("ring of %d for %q in state %s, want orbit %d for %q ringing", r.o.Code(), r.target, o.State(), o.Code(), ken.User)
		}
		return r
	}
	want := func(t *testing.T, r *ring, target string, res RingResult, got RingResult) {
		t.Helper()
		if r.target != target || got != res {
			t.Fatalf("ring for %q ended %s, want for %q ended %s", r.target, got, target, res)
		}
	}

	tests := []struct {
		name     string
		cfg      Config
		parker   Party
		script   func(t *testing.T, h *harness, o *Orbit)
		events   []EventKind // after the park event
		state    State
		inUse    int
		abandons int32
	}{
		{
			name: "parker answers", cfg: Config{Ringback: 30 * time.Second},
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				if r.d != 30*time.Second {
					t.Errorf("ring lasts %v, want 30s", r.d)
				}
				want(t, r, ken.User, Answered, r.answer(t))
				if r.ctxErr != nil {
					t.Error("the winning claim cancelled the ring before the answerer was connected")
				}
			},
			events: []EventKind{EventRingback, EventRingbackAnswered},
			state:  StateAnswered,
		},
		{
			name: "retrieve while ringing cancels the ring and wins",
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				if got, err := h.lot.Retrieve(p, o.Code(), Party{}); err != nil || got != o {
					t.Fatalf("Retrieve while ringing = %v, %v", got, err)
				}
				want(t, r, ken.User, Cancelled, recv(t, r.result))
			},
			events: []EventKind{EventRingback, EventRetrieve},
			state:  StateRetrieved,
		},
		{
			name: "parker answers but a retrieve claimed first",
			script: func(t *testing.T, h *harness, o *Orbit) {
				h.ringer.deaf.Store(true)
				r := ringing(t, h, o)
				if _, err := h.lot.Retrieve(p, o.Code(), Party{}); err != nil {
					t.Fatal(err)
				}
				want(t, r, ken.User, Lost, r.answer(t))
			},
			events: []EventKind{EventRingback, EventRetrieve},
			state:  StateRetrieved,
		},
		{
			name: "parker answers first: a later retrieve finds nothing",
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				r.answer(t)
				if _, err := h.lot.Retrieve(p, o.Code(), Party{}); !errors.Is(err, ErrNoOrbit) {
					t.Fatalf("Retrieve after the answer: %v, want ErrNoOrbit", err)
				}
			},
			events: []EventKind{EventRingback, EventRingbackAnswered, EventRefused},
			state:  StateAnswered,
		},
		{
			name: "fallback rung when the parker does not answer", cfg: Config{Fallback: "operator"},
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				want(t, r, ken.User, NoAnswer, r.noAnswer(t))
				f := recv(t, h.ringer.rings)
				if o.State() != StateRinging {
					t.Errorf("state while the fallback rings = %s", o.State())
				}
				want(t, f, "operator", Answered, f.answer(t))
				if e := h.ev.expect(t, EventRingback, EventFallback, EventRingbackAnswered); e[1].Target != "operator" || e[2].Target != "operator" {
					t.Errorf("fallback events = %+v", e)
				}
			},
			state: StateAnswered,
		},
		{
			name: "a claim from a finished ring loses", cfg: Config{Fallback: "operator"},
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				r.noAnswer(t)
				f := recv(t, h.ringer.rings)
				if r.claim() {
					t.Error("the parker's ring, already over, claimed the orbit")
				}
				f.noAnswer(t)
			},
			events: []EventKind{EventRingback, EventFallback, EventRingbackUnanswered, EventRepark},
			state:  StateParked, inUse: 1,
		},
		{
			name: "unanswered cycle re-parks with the same code and a new deadline", cfg: Config{MaxRingbacks: 3},
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				h.clock.Advance(20 * time.Second) // the ring lasts a while
				r.noAnswer(t)
				h.ev.expect(t, EventRingback, EventRingbackUnanswered, EventRepark)
				if want := epoch.Add(timeout + 20*time.Second + timeout); !o.RingbackAt().Equal(want) {
					t.Errorf("new deadline %v, want %v", o.RingbackAt(), want)
				}
				if o.Ringbacks() != 1 || h.clock.Pending() != 1 {
					t.Errorf("ringbacks %d, timers %d, want 1 and 1", o.Ringbacks(), h.clock.Pending())
				}
				if o.Code() != 10 || len(h.lot.Orbits()) != 1 || h.lot.Orbits()[0].Code != 10 || h.lot.Orbits()[0].State != StateParked {
					t.Errorf("orbits after re-park = %+v", h.lot.Orbits())
				}
				h.clock.Advance(timeout - time.Second)
				if o.State() != StateParked {
					t.Fatalf("rang again before the new deadline")
				}
				h.clock.Advance(time.Second)
				r = recv(t, h.ringer.rings)
				if r.o != o {
					t.Fatal("second cycle rang another orbit")
				}
				want(t, r, ken.User, Answered, r.answer(t))
			},
			events: []EventKind{EventRingback, EventRingbackAnswered},
			state:  StateAnswered,
		},
		{
			name: "abandon after max_ringbacks unanswered cycles", cfg: Config{MaxRingbacks: 2, Fallback: "operator"},
			script: func(t *testing.T, h *harness, o *Orbit) {
				for cycle := 1; cycle <= 2; cycle++ {
					r := ringing(t, h, o)
					r.noAnswer(t)
					recv(t, h.ringer.rings).noAnswer(t)
					if cycle == 1 {
						h.ev.expect(t, EventRingback, EventFallback, EventRingbackUnanswered, EventRepark)
					}
				}
				if a := recv(t, h.ringer.abandons); a != o {
					t.Error("abandoned another orbit")
				}
				h.clock.Advance(24 * time.Hour)
			},
			events:   []EventKind{EventRingback, EventFallback, EventRingbackUnanswered, EventAbandon},
			state:    StateAbandoned,
			abandons: 1,
		},
		{
			name: "hang-up while the parker rings", cfg: Config{MaxRingbacks: 1},
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				h.lot.Hangup(o.Call())
				if o.State() != StateHungUp || h.lot.InUse(p.Identity) != 0 {
					t.Errorf("right after Hangup: state %s, in use %d", o.State(), h.lot.InUse(p.Identity))
				}
				want(t, r, ken.User, Cancelled, recv(t, r.result))
			},
			events: []EventKind{EventRingback, EventHangup},
			state:  StateHungUp,
		},
		{
			name: "hang-up while the fallback rings", cfg: Config{MaxRingbacks: 1, Fallback: "operator"},
			script: func(t *testing.T, h *harness, o *Orbit) {
				ringing(t, h, o).noAnswer(t)
				f := recv(t, h.ringer.rings)
				h.lot.Hangup(o.Call())
				want(t, f, "operator", Cancelled, recv(t, f.result))
			},
			events: []EventKind{EventRingback, EventFallback, EventHangup},
			state:  StateHungUp,
		},
		{
			name: "parker without a user name: only the fallback rings", cfg: Config{Fallback: "operator"}, parker: Party{Display: "Lobby"},
			script: func(t *testing.T, h *harness, o *Orbit) {
				h.clock.Advance(timeout)
				f := recv(t, h.ringer.rings)
				want(t, f, "operator", Answered, f.answer(t))
			},
			events: []EventKind{EventFallback, EventRingbackAnswered},
			state:  StateAnswered,
		},
		{
			name: "nobody to ring: the cycle is unanswered at once", cfg: Config{MaxRingbacks: 1}, parker: Party{Display: "Lobby"},
			script: func(t *testing.T, h *harness, o *Orbit) {
				h.clock.Advance(timeout)
				recv(t, h.ringer.abandons)
			},
			events:   []EventKind{EventRingbackUnanswered, EventAbandon},
			state:    StateAbandoned,
			abandons: 1,
		},
		{
			name: "a new configuration applies from the next cycle", cfg: Config{Ringback: 30 * time.Second},
			script: func(t *testing.T, h *harness, o *Orbit) {
				r := ringing(t, h, o)
				h.lot.SetConfig(Config{Ringback: 45 * time.Second, Fallback: "operator", MaxRingbacks: 1})
				r.noAnswer(t) // this cycle had no fallback and allows 3 cycles
				h.ev.expect(t, EventRingback, EventRingbackUnanswered, EventRepark)
				r = ringing(t, h, o)
				if r.d != 45*time.Second {
					t.Errorf("second cycle rings for %v, want 45s", r.d)
				}
				r.noAnswer(t)
				recv(t, h.ringer.rings).noAnswer(t)
				recv(t, h.ringer.abandons)
			},
			events:   []EventKind{EventRingback, EventFallback, EventRingbackUnanswered, EventAbandon},
			state:    StateAbandoned,
			abandons: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			parker := ken
			if tt.parker != (Party{}) {
				parker = tt.parker
			}
			o, err := h.lot.Park(context.Background(), p, newCall(), alice, parker)
			if err != nil {
				t.Fatal(err)
			}
			h.ev.expect(t, EventPark)
			tt.script(t, h, o)
			h.ev.expect(t, tt.events...)
			if o.State() != tt.state {
				t.Errorf("state = %s, want %s", o.State(), tt.state)
			}
			if n := h.lot.InUse(p.Identity); n != tt.inUse {
				t.Errorf("InUse = %d, want %d", n, tt.inUse)
			}
			if tt.inUse == 0 && h.clock.Pending() != 0 {
				t.Error("a timer is still armed for an ended orbit")
			}
			ctx, cancel := contextWithTimeout()
			defer cancel()
			if err := h.lot.Close(ctx); err != nil {
				t.Fatal(err)
			}
			h.ev.none(t)
			if n := h.ringer.nAband.Load(); n != tt.abandons {
				t.Errorf("Abandon called %d times, want %d", n, tt.abandons)
			}
			if len(h.ringer.rings) != 0 {
				t.Errorf("%d unexpected rings", len(h.ringer.rings))
			}
		})
	}
}
