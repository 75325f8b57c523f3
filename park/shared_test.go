package park

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
	"github.com/parkswitch/parkswitch/store/natsstore"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

// sharedHarness is a harness whose lot shares its tables through st.
func sharedHarness(t *testing.T, st store.Orbits, node string, cfg Config) *harness {
	t.Helper()
	h := newHarness(t, cfg)
	h.lot.Share(st, node, zerolog.Nop())
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout()
		defer cancel()
		if err := h.lot.Release(ctx); err != nil {
			t.Errorf("Release: %v", err)
		}
	})
	return h
}

// settled waits until the shared table holds want orbits of node.
func settled(t *testing.T, st store.Orbits, node string, want int) []store.Orbit {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, err := st.ListOrbits(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		var mine []store.Orbit
		for _, o := range all {
			if o.Owner == node {
				mine = append(mine, o)
			}
		}
		if len(mine) == want {
			return mine
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s has %d orbits in the shared table, want %d: %+v", node, len(mine), want, mine)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSharedCodesNeverTwice(t *testing.T) {
	b := memstore.New(memstore.Options{})
	a, c := b.Open("a", ""), b.Open("b", "")
	ha, hb := sharedHarness(t, a, "a", Config{}), sharedHarness(t, c, "b", Config{})
	p := pol("Park", 10, 59) // 50 codes for 60 parks: 10 must be refused
	codes, full := raceParks(t, []*harness{ha, hb}, p, 60, 60, 5*time.Second)
	if len(codes) != 50 || full != 10 {
		t.Errorf("%d codes parked, %d refused; want 50 and 10", len(codes), full)
	}
}

func TestSharedTableFollowsTheOrbit(t *testing.T) {
	st := memstore.New(memstore.Options{}).Open("a", "")
	h := sharedHarness(t, st, "a", Config{MaxRingbacks: 2})
	p := pol("Park", 10, 19)
	o := h.park(t, p)
	rec := settled(t, st, "a", 1)[0]
	if rec.Code != o.Code() || rec.CallID != o.Call().CallID() || !rec.RingbackAt.Equal(o.RingbackAt()) || rec.State != "parked" || rec.Parker.User != ken.User {
		t.Errorf("record = %+v", rec)
	}
	// The deadline passes, nobody answers: the record says ringing, then
	// parked again with the next deadline and one ringback counted.
	h.clock.Advance(p.ParkTimeout())
	r := recv(t, h.ringer.rings)
	waitRecord(t, st, p.Identity, o.Code(), func(r store.Orbit) bool { return r.State == "ringing" })
	r.noAnswer(t)
	waitRecord(t, st, p.Identity, o.Code(), func(r store.Orbit) bool {
		return r.State == "parked" && r.Ringbacks == 1 && r.RingbackAt.Equal(o.RingbackAt())
	})
	if _, err := h.lot.Retrieve(p, o.Code(), Party{}); err != nil {
		t.Fatal(err)
	}
	settled(t, st, "a", 0)
}

func waitRecord(t *testing.T, st store.Orbits, policy string, code int, ok func(store.Orbit) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := st.GetOrbit(context.Background(), policy, code)
		if err == nil && ok(r) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("orbit %s/%d = %+v (%v)", policy, code, r, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAdoptRebuildsTheDeadline(t *testing.T) {
	b := memstore.New(memstore.Options{})
	st := b.Open("a", "")
	h := sharedHarness(t, st, "a", Config{})
	p := pol("Park", 10, 19)
	rec, err := st.CreateOrbit(context.Background(), store.Orbit{
		Policy: p.Identity, Code: 12, CallID: "restored", Parker: store.Party(ken), ParkedParty: store.Party(alice),
		ParkedAt: h.clock.Now().Add(-time.Minute), RingbackAt: h.clock.Now().Add(time.Minute),
		TimeoutSeconds: 120, State: "parked", Owner: "a",
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := h.lot.Adopt(rec, fakeCall("restored"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.lot.Adopt(rec, fakeCall("other")); !errors.Is(err, ErrParked) {
		t.Errorf("second adopt of code 12: %v, want ErrParked", err)
	}
	if o.Code() != 12 || !o.RingbackAt().Equal(rec.RingbackAt) || o.State() != StateParked {
		t.Errorf("adopted %+v", o.Info())
	}
	// A park does not take the adopted code.
	if o2 := h.park(t, p); o2.Code() == 12 {
		t.Error("a new park got the adopted code")
	}
	h.clock.Advance(59 * time.Second)
	select {
	case r := <-h.ringer.rings:
		t.Fatalf("rang %s a second early", r.target)
	default:
	}
	h.clock.Advance(time.Second)
	r := recv(t, h.ringer.rings)
	if r.o != o || r.target != ken.User {
		t.Errorf("rang %s for orbit %d", r.target, r.o.Code())
	}
	if res := r.answer(t); res != Answered {
		t.Errorf("ringback answered: %v", res)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := st.GetOrbit(context.Background(), p.Identity, 12); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the answered orbit is still in the shared table")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSharedUnavailable(t *testing.T) {
	st := memstore.New(memstore.Options{}).Open("a", "")
	h := sharedHarness(t, st, "a", Config{})
	st.Close() // every operation now fails
	_, err := h.lot.Park(context.Background(), pol("Park", 10, 19), newCall(), alice, ken)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("park with the store gone: %v, want ErrUnavailable", err)
	}
	h.ev.expect(t, EventRefused)
	if len(h.lot.Orbits()) != 0 {
		t.Error("a refused park left an orbit")
	}
}

// TestSharedCodesOnNATSCluster races 200 parks from two lots, each on its
// own connection to a three-server NATS JetStream cluster: every parked
// orbit has a code no other holds.
func TestSharedCodesOnNATSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	servers := natstest.StartCluster(t, 3)
	open := func(node string, url string) store.Store {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := natsstore.Open(ctx, natsstore.Options{URLs: []string{url}, NodeID: node, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	sa, sb := open("a", servers[0].URL()), open("b", servers[1].URL())
	ha, hb := sharedHarness(t, sa, "a", Config{}), sharedHarness(t, sb, "b", Config{})
	p := pol("Park", 10, 209) // 200 codes for 220 parks
	// 8 in flight, each given 30 s: near a full range a park probes code
	// after code on a replicated store, and the race detector slows it.
	codes, full := raceParks(t, []*harness{ha, hb}, p, 220, 8, 30*time.Second)
	if len(codes) != 200 || full != 20 {
		t.Errorf("%d codes parked, %d refused; want 200 and 20", len(codes), full)
	}
	list, err := sa.ListOrbits(context.Background(), p.Identity)
	if err != nil || len(list) != 200 {
		t.Errorf("the shared table holds %d orbits (%v), want 200", len(list), err)
	}
}

// raceParks parks n calls at once, alternately on each harness, at most
// inflight at a time, each bounded by limit, and fails t if two orbits
// got one code. It returns the codes parked and the parks refused as full.
func raceParks(t *testing.T, hs []*harness, p policy.Policy, n, inflight int, limit time.Duration) (codes map[int]string, full int) {
	t.Helper()
	var mu sync.Mutex
	codes = map[int]string{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, inflight)
	for i := range n {
		h, node := hs[i%len(hs)], string(rune('a'+i%len(hs)))
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			o, err := h.lot.Park(ctx, p, newCall(), alice, ken)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrRangeFull):
				full++
			case err != nil:
				t.Error(err)
			case codes[o.Code()] != "":
				t.Errorf("code %d parked on %s and %s", o.Code(), codes[o.Code()], node)
			default:
				codes[o.Code()] = node
			}
		}()
	}
	wg.Wait()
	return codes, full
}

func TestParkAt(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "own", true: "shared"}[shared], func(t *testing.T) {
			h := newHarness(t, Config{})
			if shared {
				h = sharedHarness(t, memstore.New(memstore.Options{}).Open("a", ""), "a", Config{})
			}
			p := pol("Park", 10, 19)
			ctx := context.Background()
			o, err := h.lot.ParkAt(ctx, p, newCall(), alice, ken, 15)
			if err != nil || o.Code() != 15 {
				t.Fatalf("ParkAt 15: %v %v", o, err)
			}
			h.ev.expect(t, EventPark)
			for _, tc := range []struct {
				code int
				want error
			}{{15, ErrOccupied}, {9, ErrOutOfRange}, {20, ErrOutOfRange}, {0, ErrOutOfRange}} {
				if _, err := h.lot.ParkAt(ctx, p, newCall(), alice, ken, tc.code); !errors.Is(err, tc.want) {
					t.Errorf("ParkAt %d: %v, want %v", tc.code, err, tc.want)
				}
			}
			// A directed park does not move where the next park starts.
			if o2 := h.park(t, p); o2.Code() != 10 {
				t.Errorf("next park got %d, want 10", o2.Code())
			}
			if len(h.lot.Orbits()) != 2 {
				t.Errorf("orbits: %+v", h.lot.Orbits())
			}
		})
	}
}
