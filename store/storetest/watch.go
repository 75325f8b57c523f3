package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// nextChange returns the next change of the tables in pols that w
// delivers, skipping those of other tests on the shared backend.
func nextChange(t *testing.T, w <-chan store.OrbitChange, pols ...string) store.OrbitChange {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c, ok := <-w:
			if !ok {
				t.Fatal("watch closed")
			}
			if c.Reset {
				return c
			}
			for _, p := range pols {
				if c.Policy == store.FoldPolicy(p) {
					return c
				}
			}
		case <-timeout:
			t.Fatal("no orbit change in 10 s")
		}
	}
}

// ours is the orbits of reset in the tables pols.
func ours(reset store.OrbitChange, pols ...string) []store.Orbit {
	var out []store.Orbit
	for _, o := range reset.Orbits {
		for _, p := range pols {
			if store.FoldPolicy(o.Policy) == store.FoldPolicy(p) {
				out = append(out, o)
			}
		}
	}
	return out
}

// testOrbitWatch: a watch on one node starts with every orbit, then sees
// the other node's creates, updates and deletes in order, and ends with
// its context.
func testOrbitWatch(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	pol := uniq("Watch Policy ")
	first := must(a.CreateOrbit(ctx, orbit(pol, 10, a.NodeID())))(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	w := must(b.WatchOrbits(wctx))(t)
	reset := nextChange(t, w, pol)
	if got := ours(reset, pol); !reset.Reset || len(got) != 1 || !sameOrbit(got[0], first) || got[0].Revision != first.Revision {
		t.Fatalf("watch began with %+v, want a reset holding %+v", reset, first)
	}

	second := must(a.CreateOrbit(ctx, orbit(pol, 11, a.NodeID())))(t)
	upd := first
	upd.State, upd.Owner = "ringing", b.NodeID()
	upd = must(a.UpdateOrbit(ctx, upd))(t)
	if err := a.DeleteOrbit(ctx, second); err != nil {
		t.Fatal(err)
	}
	// The create of 11 may be left out: its delete supersedes it, and a
	// watch that falls behind sees only each orbit's latest write.
	wants := []store.OrbitChange{
		{Policy: store.FoldPolicy(pol), Code: 11, Orbit: second},
		{Policy: store.FoldPolicy(pol), Code: 10, Orbit: upd},
		{Policy: store.FoldPolicy(pol), Code: 11, Gone: true},
	}
	superseded := func(i int) bool {
		for _, later := range wants[i+1:] {
			if later.Code == wants[i].Code {
				return true
			}
		}
		return false
	}
	same := func(c, want store.OrbitChange) bool {
		return !c.Reset && c.Policy == want.Policy && c.Code == want.Code && c.Gone == want.Gone &&
			(want.Gone || sameOrbit(c.Orbit, want.Orbit) && c.Orbit.Revision == want.Orbit.Revision)
	}
	for i := 0; i < len(wants); {
		c := nextChange(t, w, pol)
		for i < len(wants) && !same(c, wants[i]) && superseded(i) {
			i++
		}
		if i == len(wants) || !same(c, wants[i]) {
			t.Fatalf("change %+v, want the changes from %d of %+v in order", c, i, wants)
		}
		i++
	}

	// A second watch starts from the state now.
	again := must(a.WatchOrbits(wctx))(t)
	if got := ours(nextChange(t, again, pol), pol); len(got) != 1 || got[0].Code != 10 || got[0].State != "ringing" {
		t.Fatalf("a new watch began with %+v, want code 10 ringing", got)
	}
	stop()
	for _, ch := range []<-chan store.OrbitChange{w, again} {
		if !closedWithin(ch, 5*time.Second) {
			t.Fatal("watch not closed 5 s after its context was cancelled")
		}
	}
	_, err := b.WatchOrbits(wctx)
	if err == nil {
		t.Fatal("watch on a cancelled context")
	}
	// Closing the store ends its watches.
	c := h.Open(t, uniq("c"))
	live := must(c.WatchOrbits(ctx))(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(live, 5*time.Second) {
		t.Fatal("watch not closed 5 s after its store was")
	}
}

// closedWithin reports whether ch is closed within d, reading what is left.
func closedWithin(ch <-chan store.OrbitChange, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		case <-timeout:
			return false
		}
	}
}
