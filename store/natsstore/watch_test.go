package natsstore

import (
	"context"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// TestWatchOrbitsReconnect: the orbit watch ends when the connection comes
// back after the server was away, and a new one starts from the state then.
func TestWatchOrbitsReconnect(t *testing.T) {
	n := startServer(t, "single")
	s := open(t, Options{URLs: []string{n.URL()}, NodeID: "a", OpTimeout: time.Second})
	ctx := ctxT(t)
	w, err := s.WatchOrbits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-w; !r.Reset || len(r.Orbits) != 0 {
		t.Fatalf("first: %+v, want an empty reset", r)
	}
	o, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Watch", Code: 10, CallID: "c10"})
	if err != nil {
		t.Fatal(err)
	}
	if c := next(t, w); c.Reset || c.Code != 10 || c.Orbit.CallID != "c10" || c.Orbit.Revision != o.Revision {
		t.Fatalf("change %+v, want the create of 10", c)
	}

	n.Stop()
	n.Start()
	select {
	case _, ok := <-w:
		if ok {
			t.Fatal("a change delivered across the outage")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("watch still open 20 s after the server came back")
	}
	eventually(t, "watch again", func(context.Context) error {
		w, err = s.WatchOrbits(ctx) // the test's context: the watch outlives the try
		return err
	})
	if r := next(t, w); !r.Reset || len(r.Orbits) != 1 || r.Orbits[0].CallID != "c10" {
		t.Fatalf("after the outage: %+v, want a reset holding 10", r)
	}
	if err := s.DeleteOrbit(ctx, o); err != nil {
		t.Fatal(err)
	}
	if c := next(t, w); !c.Gone || c.Policy != "watch" || c.Code != 10 {
		t.Fatalf("change %+v, want 10 of watch gone", c)
	}
}

func next(t *testing.T, w <-chan store.OrbitChange) store.OrbitChange {
	t.Helper()
	select {
	case c, ok := <-w:
		if !ok {
			t.Fatal("watch closed")
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change in 10 s")
	}
	return store.OrbitChange{}
}

func TestParseOrbitKey(t *testing.T) {
	for _, tt := range []struct {
		policy string
		code   int
	}{{"sales policy", 10}, {"a.b=c/ü", 99}, {"global", 1}} {
		p, c, ok := parseOrbitKey(orbitKey(tt.policy, tt.code))
		if !ok || p != tt.policy || c != tt.code {
			t.Errorf("%q/%d read back as %q/%d %v", tt.policy, tt.code, p, c, ok)
		}
	}
	for _, key := range []string{"c.sales", "o.sales", "o.sales.x", "o.sales.0", "o.bad=Z1.10", "o.short=4.10", "d.x.y"} {
		if _, _, ok := parseOrbitKey(key); ok {
			t.Errorf("%q read as an orbit key", key)
		}
	}
}
