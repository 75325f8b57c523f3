package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDirectedPark is SPEC §11 "Directed park": a REFER to a free code of
// the parker's range parks at exactly that code; an occupied code is
// accepted and then fails with a NOTIFY sipfrag 486, and a code outside
// the range gets 403; both leave the call as it was.
func TestDirectedPark(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, ts, "1001", "udp"), phone(t, ctx, ts, "1002", "udp")
	carol, dave := phone(t, ctx, ts, "1003", "udp"), phone(t, ctx, ts, "1004", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	if code := parkCallTo(t, ctx, bob, b, a, "sip:15@"+testDomain); code != "15" {
		t.Fatalf("directed park to 15 parked at %s", code)
	}
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	d, c := call(t, ctx, dave, carol, "1003")
	st, err := c.Refer(ctx, "sip:15@"+testDomain)
	if err != nil || st != 202 {
		t.Fatalf("REFER to the occupied code: %d %v, want 202", st, err)
	}
	select {
	case n := <-c.Notifies():
		if !strings.HasPrefix(string(n.Body()), "SIP/2.0 486") {
			t.Errorf("NOTIFY for the occupied code says %q, want 486", n.Body())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY for the occupied code")
	}
	talk(t, ctx, d, c, 20)
	if st, err := c.Refer(ctx, "sip:100@"+testDomain); err != nil || st != 403 {
		t.Errorf("REFER to a code outside DemoPark's 10–99: %d %v, want 403", st, err)
	}
	talk(t, ctx, d, c, 20)
	if n := len(ts.sw.Lot().Orbits()); n != 1 {
		t.Errorf("%d orbits, want only the one at 15", n)
	}
	hangUp(t, ctx, d, c, "callee")

	r, err := bob.Dial(ctx, "15")
	if err != nil {
		t.Fatalf("retrieve 15: %v", err)
	}
	nextReInvite(t, a, "parked party on retrieve")
	talk(t, ctx, a, r, 20)
	hangUp(t, ctx, r, a, "retrieved party")
}
