package notify

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
)

// TestFollow: of two nodes sharing a store, the follower of node a posts
// a's events only, from the moment it started, and stops with its context.
func TestFollow(t *testing.T) {
	rv := newReceiver(t, nil)
	o, _ := fastOptions(io.Discard)
	n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
	backend := memstore.New(memstore.Options{})
	a, b := backend.Open("a", ""), backend.Open("b", "")
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	publish := func(s *memstore.Store, typ store.EventType) {
		t.Helper()
		if _, err := s.PublishEvent(ctx, parkEvent(typ)); err != nil {
			t.Fatal(err)
		}
	}
	publish(a, store.EventParked) // before Follow: not posted

	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(fctx, a, "a", n, zerolog.Nop())
	}()
	// Follow subscribes "from now on": wait until it has, by publishing
	// until something arrives.
	deadline := time.Now().Add(5 * time.Second)
	var first posted
	for got := false; !got; {
		publish(a, store.EventRetrieved)
		select {
		case first = <-rv.reqs:
			got = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("Follow delivered nothing")
			}
		}
	}
	if first.header.Get(HeaderEvent) != "retrieved" {
		t.Errorf("first post %s, want the retrieved published after Follow started", first.header.Get(HeaderEvent))
	}
	// Skip the other retrieveds published while waiting, up to a marker.
	publish(a, store.EventRingbackStarted)
	for rv.next(t).header.Get(HeaderEvent) != "ringback.started" {
	}
	publish(b, store.EventAbandoned)
	publish(a, store.EventParkedHungUp)
	if p := rv.next(t); p.header.Get(HeaderEvent) != "parked.hungup" {
		t.Errorf("posted %s, want a's parked.hungup and not b's abandoned", p.header.Get(HeaderEvent))
	}
	stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return when its context ended")
	}
}

// TestFollowStoreClosed: Follow returns when the store closes.
func TestFollowStoreClosed(t *testing.T) {
	o, _ := fastOptions(io.Discard)
	n := startNotifier(t, nil, o)
	s := memstore.New(memstore.Options{}).Open("a", "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(context.Background(), s, "a", n, zerolog.Nop())
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return when the store closed")
	}
}
