package park

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/policy"
)

// step is one action on a lot: park (want code or err), retrieve code (want
// err), or the parked party of code hanging up.
type step struct {
	do   string // "park", "retrieve", "hangup"
	p    policy.Policy
	code int
	err  error
}

func park(p policy.Policy, code int) step     { return step{do: "park", p: p, code: code} }
func parkErr(p policy.Policy, err error) step { return step{do: "park", p: p, err: err} }
func retrieve(p policy.Policy, code int) step { return step{do: "retrieve", p: p, code: code} }
func hangup(p policy.Policy, code int) step   { return step{do: "hangup", p: p, code: code} }

func retrieveErr(p policy.Policy, code int, err error) step {
	return step{do: "retrieve", p: p, code: code, err: err}
}

// denied is p with call park turned off.
func denied(p policy.Policy) policy.Policy {
	p.AllowCallPark = false
	return p
}

func TestAllocation(t *testing.T) {
	a := pol("SalesPolicy", 10, 14)
	b := pol("Support", 10, 14)
	small := pol("Small", 10, 12)
	wide := pol("Wide", 10, 20)
	moved := pol("wide", 50, 60) // Wide after an edit moved its range
	shrunk := pol("WIDE", 11, 12)
	grown := pol("Wide", 12, 30)

	tests := []struct {
		name  string
		steps []step
		inUse map[string]int // table sizes at the end
	}{
		{"sequence from start", []step{park(a, 10), park(a, 11), park(a, 12)}, map[string]int{"SalesPolicy": 3}},
		{"previous code + 1 even after it was freed", []step{
			park(a, 10), park(a, 11), retrieve(a, 11), park(a, 12), retrieve(a, 10), park(a, 13),
		}, map[string]int{"SalesPolicy": 2}},
		{"skips occupied codes", []step{
			park(a, 10), park(a, 11), park(a, 12), park(a, 13), park(a, 14),
			retrieve(a, 12), retrieve(a, 10), park(a, 10), park(a, 12),
		}, map[string]int{"SalesPolicy": 5}},
		{"wraps from end to start", []step{
			park(small, 10), park(small, 11), park(small, 12), retrieve(small, 10), park(small, 10),
			retrieve(small, 12), park(small, 12),
		}, map[string]int{"Small": 3}},
		{"wraps past occupied codes", []step{
			park(a, 10), park(a, 11), park(a, 12), park(a, 13), park(a, 14), retrieve(a, 12), park(a, 12),
		}, map[string]int{"SalesPolicy": 5}},
		{"full range refuses and changes nothing", []step{
			park(small, 10), park(small, 11), park(small, 12), parkErr(small, ErrRangeFull), parkErr(small, ErrRangeFull),
			retrieve(small, 11), park(small, 11), parkErr(small, ErrRangeFull),
		}, map[string]int{"Small": 3}},
		{"policies have independent code spaces", []step{
			park(a, 10), park(b, 10), park(a, 11), park(b, 11), park(b, 12),
			retrieveErr(a, 12, ErrNoOrbit), retrieve(b, 10), retrieve(a, 10), retrieveErr(b, 10, ErrNoOrbit),
		}, map[string]int{"SalesPolicy": 1, "Support": 2}},
		{"identities ignore case", []step{
			park(pol("Sales", 10, 99), 10), park(pol("SALES", 10, 99), 11), retrieve(pol("sales", 10, 99), 10),
		}, map[string]int{"sAlEs": 1}},
		{"range moved: old code retrievable, allocation from the new start", []step{
			park(wide, 10), park(wide, 11), park(moved, 50), park(moved, 51),
			retrieve(moved, 10), retrieve(wide, 51), park(moved, 52), retrieve(moved, 11),
		}, map[string]int{"Wide": 2}},
		{"range grown: next code still inside continues", []step{
			park(wide, 10), park(wide, 11), park(wide, 12), park(grown, 13),
		}, map[string]int{"Wide": 4}},
		{"range shrunk onto occupied codes", []step{
			park(wide, 10), park(wide, 11), park(shrunk, 12), parkErr(shrunk, ErrRangeFull),
			retrieve(shrunk, 10), parkErr(shrunk, ErrRangeFull), retrieve(shrunk, 11), park(shrunk, 11),
		}, map[string]int{"Wide": 2}},
		{"range end below start is full", []step{
			parkErr(pol("Odd", 20, 19), ErrRangeFull),
		}, map[string]int{"Odd": 0}},
		{"not allowed to park or retrieve", []step{
			parkErr(denied(a), ErrNotAllowed), park(a, 10), retrieveErr(denied(a), 10, ErrNotAllowed), park(a, 11),
		}, map[string]int{"SalesPolicy": 2}},
		{"hang-up frees the code", []step{
			park(small, 10), park(small, 11), park(small, 12), hangup(small, 11), park(small, 11), hangup(small, 10),
			retrieveErr(small, 10, ErrNoOrbit),
		}, map[string]int{"Small": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			calls := map[string]Call{} // by folded policy and code
			key := func(p policy.Policy, code int) string { return strings.ToLower(p.Identity) + "/" + strconv.Itoa(code) }
			for i, s := range tt.steps {
				switch s.do {
				case "park":
					c := newCall()
					o, err := h.lot.Park(context.Background(), s.p, c, alice, ken)
					if !errors.Is(err, s.err) {
						t.Fatalf("step %d: Park(%s) error = %v, want %v", i, s.p.Identity, err, s.err)
					}
					if err != nil {
						if o != nil {
							t.Fatalf("step %d: Park failed but returned an orbit", i)
						}
						continue
					}
					if o.Code() != s.code {
						t.Fatalf("step %d: Park(%s) code = %d, want %d", i, s.p.Identity, o.Code(), s.code)
					}
					calls[key(s.p, o.Code())] = c
				case "retrieve":
					o, err := h.lot.Retrieve(s.p, s.code, Party{})
					if !errors.Is(err, s.err) {
						t.Fatalf("step %d: Retrieve(%s, %d) error = %v, want %v", i, s.p.Identity, s.code, err, s.err)
					}
					if err != nil {
						continue
					}
					if o.Code() != s.code || o.State() != StateRetrieved || o.Call() != calls[key(s.p, s.code)] {
						t.Fatalf("step %d: Retrieve(%s, %d) = code %d state %s call %v", i, s.p.Identity, s.code, o.Code(), o.State(), o.Call())
					}
				case "hangup":
					h.lot.Hangup(calls[key(s.p, s.code)])
				}
			}
			total := 0
			for id, n := range tt.inUse {
				if got := h.lot.InUse(id); got != n {
					t.Errorf("InUse(%s) = %d, want %d", id, got, n)
				}
				total += n
			}
			if got := len(h.lot.Orbits()); got != total {
				t.Errorf("Orbits() has %d orbits, want %d", got, total)
			}
			if got := h.clock.Pending(); got != total {
				t.Errorf("%d ringback timers armed, want one per orbit (%d)", got, total)
			}
		})
	}
}

func TestRefusedEvents(t *testing.T) {
	small := pol("Small", 10, 10)
	tests := []struct {
		name   string
		do     func(l *Lot) error
		err    error
		reason string
		code   int
	}{
		{"park not allowed", func(l *Lot) error {
			_, err := l.Park(context.Background(), denied(small), newCall(), alice, ken)
			return err
		}, ErrNotAllowed, ReasonNotAllowed, 0},
		{"range full", func(l *Lot) error { _, err := l.Park(context.Background(), small, newCall(), alice, ken); return err }, ErrRangeFull, ReasonRangeFull, 0},
		{"already parked", func(l *Lot) error {
			_, err := l.Park(context.Background(), pol("Other", 10, 99), fakeCall("first"), alice, ken)
			return err
		}, ErrParked, ReasonParked, 0},
		{"retrieve not allowed", func(l *Lot) error { _, err := l.Retrieve(denied(small), 10, Party{}); return err }, ErrNotAllowed, ReasonNotAllowed, 10},
		{"no orbit", func(l *Lot) error { _, err := l.Retrieve(small, 11, Party{}); return err }, ErrNoOrbit, ReasonNoOrbit, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			if _, err := h.lot.Park(context.Background(), small, fakeCall("first"), alice, ken); err != nil {
				t.Fatal(err)
			}
			h.ev.expect(t, EventPark)
			if err := tt.do(h.lot); !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			e := h.ev.expect(t, EventRefused)[0]
			if e.Reason != tt.reason || e.Orbit.Code != tt.code || e.Orbit.Policy == "" {
				t.Errorf("refused event = %+v, want reason %s code %d", e, tt.reason, tt.code)
			}
			if h.lot.InUse("small") != 1 {
				t.Error("a refusal changed the table")
			}
		})
	}
}

func TestRetrieveCancelsTimer(t *testing.T) {
	h := newHarness(t, Config{})
	p := pol("Sales", 500, 1500)
	o := h.park(t, p)
	if _, err := h.lot.Retrieve(pol("Global", 500, 1500), o.Code(), Party{}); !errors.Is(err, ErrNoOrbit) {
		t.Fatalf("Retrieve from another policy's table: %v, want ErrNoOrbit", err)
	}
	carol := Party{User: "1003", Display: "Carol"}
	got, err := h.lot.Retrieve(p, o.Code(), carol)
	if err != nil || got != o {
		t.Fatalf("Retrieve = %v, %v", got, err)
	}
	evs := h.ev.expect(t, EventPark, EventRefused, EventRetrieve)
	if e := evs[2]; e.By != carol || e.CallID != o.Call().CallID() || e.Orbit.Code != o.Code() {
		t.Errorf("retrieve event = %+v, want by %v for call %s", e, carol, o.Call().CallID())
	}
	if h.clock.Pending() != 0 {
		t.Error("the ringback timer is still armed")
	}
	h.clock.Advance(time.Hour)
	h.ev.none(t)
	if len(h.ringer.rings) != 0 {
		t.Error("a retrieved orbit rang back")
	}
	if _, err := h.lot.Retrieve(p, o.Code(), Party{}); !errors.Is(err, ErrNoOrbit) {
		t.Errorf("second Retrieve: %v, want ErrNoOrbit", err)
	}
	h.ev.expect(t, EventRefused)
	h.lot.Hangup(o.Call()) // the retrieved call ends later: not the lot's business
	h.ev.none(t)
	if o.State() != StateRetrieved {
		t.Errorf("state after a late hang-up = %s", o.State())
	}
}

func TestHangupWhileParked(t *testing.T) {
	h := newHarness(t, Config{})
	p := pol("Sales", 10, 99)
	o := h.park(t, p)
	h.lot.Hangup(o.Call())
	h.lot.Hangup(o.Call()) // idempotent
	h.ev.expect(t, EventPark, EventHangup)
	h.ev.none(t)
	if o.State() != StateHungUp || h.lot.InUse("Sales") != 0 || h.clock.Pending() != 0 {
		t.Fatalf("after hang-up: state %s, in use %d, timers %d", o.State(), h.lot.InUse("Sales"), h.clock.Pending())
	}
	h.clock.Advance(time.Hour)
	h.ev.none(t)
	// The same call may be parked again once its orbit has ended.
	if _, err := h.lot.Park(context.Background(), p, o.Call(), alice, ken); err != nil {
		t.Fatalf("park again: %v", err)
	}
}

// A policy edit after park moves neither the deadline nor the code.
func TestDeadlineFixedAtPark(t *testing.T) {
	h := newHarness(t, Config{})
	p := pol("Sales", 10, 99)
	p.ParkTimeoutSeconds = 120
	o := h.park(t, p)
	if want := epoch.Add(120 * time.Second); !o.RingbackAt().Equal(want) || !o.ParkedAt().Equal(epoch) {
		t.Fatalf("ParkedAt %v RingbackAt %v, want %v %v", o.ParkedAt(), o.RingbackAt(), epoch, want)
	}
	p.ParkTimeoutSeconds = 1800
	p.PickupRangeStart = 500
	p.PickupRangeEnd = 600
	h.park(t, p)
	h.clock.Advance(119 * time.Second)
	if o.State() != StateParked {
		t.Fatalf("state before the deadline = %s", o.State())
	}
	h.clock.Advance(time.Second)
	r := recv(t, h.ringer.rings)
	if r.o != o {
		t.Fatal("the wrong orbit rang back")
	}
	r.noAnswer(t)
}

func TestOrbitsJSON(t *testing.T) {
	h := newHarness(t, Config{})
	h.park(t, pol("support", 30, 99))
	h.park(t, pol("Sales", 10, 99))
	h.park(t, pol("Sales", 10, 99))
	h.park(t, pol("Global", 10, 99))
	got := h.lot.Orbits()
	var order []string
	for _, o := range got {
		order = append(order, o.Policy+":"+strconv.Itoa(o.Code))
	}
	if want := "Global:10 Sales:10 Sales:11 support:30"; strings.Join(order, " ") != want {
		t.Errorf("Orbits() order = %v, want %s", order, want)
	}
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"policy":"Global","code":10,` +
		`"parked_party":{"user":"1001","display_name":"Alice","uri":"sip:1001@contoso.com"},` +
		`"parker":{"user":"ken.myer","display_name":"Ken Myer","uri":"sip:ken.myer@contoso.com"},` +
		`"parked_at":"2025-03-01T09:00:00Z","ringback_at":"2025-03-01T09:05:00Z","state":"parked"}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
}

func TestAt(t *testing.T) {
	h := newHarness(t, Config{})
	sales := pol("Sales", 500, 501)
	o, err := h.lot.Park(context.Background(), sales, newCall(), alice, ken)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		identity string
		code     int
		want     bool
	}{
		{"Sales", 500, true},
		{"SALES", 500, true}, // policy identities ignore case
		{"Sales", 501, false},
		{"Other", 500, false},
	}
	for _, tt := range tests {
		info, ok := h.lot.At(tt.identity, tt.code)
		if ok != tt.want || (ok && (info.Code != o.Code() || info.ParkedParty != alice)) {
			t.Errorf("At(%s, %d) = %+v, %v; want found %v", tt.identity, tt.code, info, ok, tt.want)
		}
	}
	if _, err := h.lot.Retrieve(sales, 500, Party{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.lot.At("Sales", 500); ok {
		t.Error("At finds a retrieved orbit")
	}
}
