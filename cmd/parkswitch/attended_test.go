package main

import (
	"context"
	"slices"
	"testing"
	"time"

	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
	"github.com/parkswitch/parkswitch/store"
)

// recordOf is the call record of callID among recs.
func recordOf(t *testing.T, recs []store.CallRecord, callID string) store.CallRecord {
	t.Helper()
	for _, r := range recs {
		if r.CallID == callID {
			return r
		}
	}
	t.Fatalf("no call record of %s in %+v", callID, recs)
	return store.CallRecord{}
}

// TestAttendedTransferE2E is SPEC §11 "Attended transfer" through the
// binary's configuration: Alice (1001) calls Bob (1002), Bob holds her,
// calls Carol (1003, over TCP) and REFERs Alice's call with Replaces
// naming his call with Carol. Alice and Carol talk through the relay,
// Bob's phone hangs up both of its calls on the NOTIFY 200, and the call
// records show Carol's leg joining Alice's call and Bob's call with Carol
// ending as transferred.
func TestAttendedTransferE2E(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")

	a, b1 := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b1, 10)
	if err := b1.Hold(ctx); err != nil {
		t.Fatalf("hold: %v", err)
	}
	nextReInvite(t, a, "held transferee")
	b2, c := call(t, ctx, bob, carol, "1003")
	talk(t, ctx, b2, c, 10)
	if st, err := b1.ReferReplaces(ctx, "sip:1003@"+testDomain, b2.ReplacesID()); err != nil || st != 202 {
		t.Fatalf("REFER with Replaces: %d %v, want 202", st, err)
	}
	nextReInvite(t, c, "transfer target")
	nextReInvite(t, a, "transferee")
	referNotify(t, b1, "SIP/2.0 200", "terminated")
	for _, b := range []*siptest.Call{b1, b2} {
		if err := b.Hangup(ctx); err != nil {
			t.Errorf("transferor hangs up: %v", err)
		}
	}
	talk(t, ctx, a, c, 30)
	hangUp(t, ctx, c, a, "transferee")

	recs := records(t, ts, 2)
	r1, r2 := recordOf(t, recs, a.CallID()), recordOf(t, recs, b2.CallID())
	if r1.From != "1001" || r1.To != "1002" || r1.EndReason != "bye from b" {
		t.Errorf("record of the transferee's call: %+v", r1)
	}
	if got := legRoles(r1); !slices.Equal(got, []string{"caller:1001", "callee:1002", "caller:1002", "transfer:1003"}) {
		t.Errorf("legs of the transferee's call %v", got)
	}
	if r2.From != "1002" || r2.To != "1003" || r2.EndReason != "transferred" {
		t.Errorf("record of the consult call: %+v", r2)
	}
	if got := legRoles(r2); !slices.Equal(got, []string{"caller:1002", "callee:1003"}) {
		t.Errorf("legs of the consult call %v", got)
	}
}

// TestAttendedParkE2E: Bob holds Alice, calls the park address, hears
// music, and completes an attended transfer to park on Alice's call. It
// is a park like the blind one: Alice hears music, Bob gets NOTIFY 200
// and "parked at 10", Carol's lamp for 10 lights, and when nobody picks
// up Bob's phone rings back "Parked 10" and answering it connects him to
// Alice.
func TestAttendedParkE2E(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) {
		o.ParkClock = scaledClock{factor: 100}
		o.Park.Ringback = 3 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")
	lamp, err := carol.Subscribe(ctx, "10", "dialog", 120)
	if err != nil {
		t.Fatalf("SUBSCRIBE to 10: %v", err)
	}
	if n := nextLamp(t, lamp, "first NOTIFY"); n.busy {
		t.Fatalf("lamp 10 lit before any park: %+v", n)
	}

	a, b1 := call(t, ctx, alice, bob, "1002")
	if err := b1.Hold(ctx); err != nil {
		t.Fatalf("hold: %v", err)
	}
	nextReInvite(t, a, "held party")
	b2, err := bob.Dial(ctx, "park")
	if err != nil {
		t.Fatalf("call the park address: %v", err)
	}
	rtpFlows(t, b2, 10, "music on the call to the park address")
	lit := watchLamp(ts, lamp, 10, true)
	if st, err := b1.ReferReplaces(ctx, parkURI, b2.ReplacesID()); err != nil || st != 202 {
		t.Fatalf("REFER with Replaces to park: %d %v, want 202", st, err)
	}
	if d := siptest.SDPDirection(nextReInvite(t, a, "parked party").Body()); d != "sendonly" {
		t.Errorf("parked party re-INVITEd %q, want sendonly", d)
	}
	rtpFlows(t, a, 10, "music at the parked party")
	referNotify(t, b1, "SIP/2.0 200", "terminated")
	select {
	case m := <-bob.Messages():
		if want := "Call from Alice Reception (1001) parked at 10"; string(m.Body()) != want {
			t.Errorf("MESSAGE to the parker %q, want %q", m.Body(), want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no MESSAGE with the park code")
	}
	if d := <-lit; d < 0 || d > lampChange {
		t.Errorf("lamp 10 lit %v after the park, want within %v", d, lampChange)
	}
	for _, b := range []*siptest.Call{b1, b2} {
		if err := b.Hangup(ctx); err != nil {
			t.Errorf("parker hangs up: %v", err)
		}
	}

	select {
	case in := <-bob.Incoming():
		if in.FromDisplay != "Parked 10" || in.FromUser != "1001" {
			t.Errorf("ringback shows %q <%s>, want Parked 10 <1001>", in.FromDisplay, in.FromUser)
		}
		rb, err := in.Answer(ctx)
		if err != nil {
			t.Fatalf("answer the ringback: %v", err)
		}
		nextReInvite(t, a, "parked party on ringback answer")
		bridged(t, ctx, a, rb)
		talk(t, ctx, a, rb, 20)
		hangUp(t, ctx, rb, a, "parked party")
	case <-time.After(15 * time.Second):
		t.Fatal("no ringback to the parker after the park timeout")
	}
	if code, err := lamp.Unsubscribe(ctx); err != nil || code != 200 {
		t.Errorf("un-subscribe: %d %v", code, err)
	}
}
