package memstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
	"github.com/parkswitch/parkswitch/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	b := memstore.New(memstore.Options{})
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, id string) store.Store {
			s := b.Open(id, "127.0.0.1:5060")
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Kill: func(_ *testing.T, s store.Store) { s.(*memstore.Store).Kill() },
	})
}

// TestWatchLag: a receiver that falls more than store.WatchLag changes
// behind has its watch closed, and a new watch starts from the state now.
func TestWatchLag(t *testing.T) {
	ctx := t.Context()
	s := memstore.New(memstore.Options{}).Open("a", "")
	defer s.Close()
	w, err := s.WatchOrbits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-w // the reset
	o := store.Orbit{Policy: "Lag", Code: 10, CallID: "c"}
	for i := 0; i <= store.WatchLag+64; i++ { // the channel's buffer, then the log
		if o, err = s.CreateOrbit(ctx, o); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOrbit(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range w {
		n++
	}
	if n >= 2*(store.WatchLag+65) {
		t.Fatalf("%d changes delivered: the watch should have ended behind", n)
	}
	again, err := s.WatchOrbits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-again; !r.Reset || len(r.Orbits) != 0 {
		t.Fatalf("new watch began with %+v, want an empty reset", r)
	}
}
