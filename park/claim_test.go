package park

import (
	"context"
	"errors"
	"testing"
)

func TestClaim(t *testing.T) {
	p := pol("DemoPark", 10, 11)
	bob := Party{User: "1002", Display: "Bob"}
	tests := []struct {
		name   string
		before func(h *harness, o *Orbit) // what happens to o before the claim
		want   error
		kinds  []EventKind // events after the park
	}{
		{"parked", func(*harness, *Orbit) {}, nil, []EventKind{EventRetrieve}},
		{"retrieved first", func(h *harness, o *Orbit) {
			if _, err := h.lot.Retrieve(p, o.Code(), bob); err != nil {
				t.Fatal(err)
			}
		}, ErrNoOrbit, []EventKind{EventRetrieve}},
		{"hung up first", func(h *harness, o *Orbit) { h.lot.Hangup(o.Call()) }, ErrNoOrbit, []EventKind{EventHangup}},
		{"hung up and the code parked again", func(h *harness, o *Orbit) {
			h.lot.Hangup(o.Call())
			if _, err := h.lot.ParkAt(context.Background(), p, newCall(), alice, ken, o.Code()); err != nil {
				t.Fatal(err)
			}
		}, ErrNoOrbit, []EventKind{EventHangup, EventPark}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			o := h.park(t, p)
			h.ev.expect(t, EventPark)
			tt.before(h, o)
			err := h.lot.Claim(o, bob)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Claim = %v, want %v", err, tt.want)
			}
			evs := h.ev.expect(t, tt.kinds...)
			h.ev.none(t)
			if tt.want == nil {
				if o.State() != StateRetrieved || evs[0].By != bob || evs[0].Orbit.Code != o.Code() {
					t.Errorf("after Claim: state %s, event %+v", o.State(), evs[0])
				}
				if h.lot.Lookup("demopark", o.Code()) != nil || h.lot.OrbitOf(o.Call().CallID()) != nil {
					t.Error("the claimed orbit is still in its table")
				}
				if h.clock.Pending() != 0 {
					t.Errorf("%d timers armed after the claim", h.clock.Pending())
				}
			}
		})
	}
}

func TestClaimRacesRingback(t *testing.T) {
	h := newHarness(t, Config{})
	p := pol("DemoPark", 10, 11)
	o := h.park(t, p)
	h.ringer.deaf.Store(true) // the parker answers after the claim
	h.clock.Advance(p.ParkTimeout())
	r := recv(t, h.ringer.rings)
	if err := h.lot.Claim(o, Party{User: "1003"}); err != nil {
		t.Fatalf("Claim while ringing back: %v", err)
	}
	if r.ctx.Err() == nil {
		t.Error("the ringback was not cancelled by the claim")
	}
	if res := r.answer(t); res != Lost {
		t.Errorf("the parker answering after the claim got %v, want lost", res)
	}
	if got := h.lot.Lookup("DemoPark", o.Code()); got != nil {
		t.Errorf("Lookup after the claim = %v", got)
	}
}

func TestLookup(t *testing.T) {
	h := newHarness(t, Config{})
	o := h.park(t, pol("Sales", 10, 20))
	if got := h.lot.Lookup("SALES", o.Code()); got != o {
		t.Errorf("Lookup ignoring case = %v, want the orbit", got)
	}
	for _, miss := range []struct {
		identity string
		code     int
	}{{"Sales", o.Code() + 1}, {"Other", o.Code()}} {
		if got := h.lot.Lookup(miss.identity, miss.code); got != nil {
			t.Errorf("Lookup(%s, %d) = %v, want nil", miss.identity, miss.code, got)
		}
	}
}
