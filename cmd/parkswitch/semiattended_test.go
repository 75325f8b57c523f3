package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestSemiAttendedTransferE2E: through the binary's configuration, Bob
// holds Alice, calls Carol (over TCP) and transfers Alice while Carol's
// phone rings. His INVITE ends with 487, Carol answers later and talks
// with Alice through the relay, Bob gets NOTIFY 100 then 200, and the
// call records show Carol's leg joining Alice's call and Bob's call to
// Carol ending as transferred.
func TestSemiAttendedTransferE2E(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")

	a, b1 := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b1, 10)
	twoParty := footprint(ts)
	if err := b1.Hold(ctx); err != nil {
		t.Fatalf("hold: %v", err)
	}
	nextReInvite(t, a, "held transferee")
	consult, err := bob.DialAsync(ctx, "1003")
	if err != nil {
		t.Fatal(err)
	}
	var in *siptest.Incoming
	select {
	case in = <-carol.Incoming():
	case <-time.After(5 * time.Second):
		t.Fatal("Carol's phone did not ring")
	}
	if err := in.Ring(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-consult.Ringing():
	case <-time.After(5 * time.Second):
		t.Fatal("no ringing at Bob's phone")
	}

	if st, err := b1.ReferReplaces(ctx, "sip:1003@"+testDomain, consult.EarlyReplacesID()); err != nil || st != 202 {
		t.Fatalf("REFER with Replaces naming the ringing call: %d %v, want 202", st, err)
	}
	wctx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	if err := consult.Wait(wctx); siptest.StatusCode(err) != 487 {
		t.Errorf("Bob's INVITE to Carol ended with %v, want 487", err)
	}
	referNotify(t, b1, "SIP/2.0 100", "active")
	time.Sleep(300 * time.Millisecond) // Carol takes her time
	c, err := in.Answer(ctx)
	if err != nil {
		t.Fatalf("Carol answers: %v", err)
	}
	if d := siptest.SDPDirection(nextReInvite(t, a, "transferee").Body()); d != "sendrecv" && d != "" {
		t.Errorf("transferee re-INVITEd %q, want sendrecv", d)
	}
	referNotify(t, b1, "SIP/2.0 200", "terminated")
	if err := b1.Hangup(ctx); err != nil {
		t.Fatalf("transferor hangs up: %v", err)
	}
	talk(t, ctx, a, c, 50)
	settlesTo(t, ts, twoParty, "after the semi-attended transfer")
	hangUp(t, ctx, c, a, "transferee")

	recs := records(t, ts, 2)
	r1, r2 := recordOf(t, recs, a.CallID()), recordOf(t, recs, consult.CallID())
	if r1.From != "1001" || r1.To != "1002" || r1.EndReason != "bye from b" {
		t.Errorf("record of the transferee's call: %+v", r1)
	}
	if got := legRoles(r1); !slices.Equal(got, []string{"caller:1001", "callee:1002", "transfer:1003"}) {
		t.Errorf("legs of the transferee's call %v", got)
	}
	if r2.From != "1002" || r2.To != "1003" || r2.EndReason != "transferred" {
		t.Errorf("record of the call handed over: %+v", r2)
	}
	if got := legRoles(r2); !slices.Equal(got, []string{"caller:1002"}) {
		t.Errorf("legs of the call handed over %v", got)
	}
}
