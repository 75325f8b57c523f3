package main

import (
	"context"
	"strings"
	"testing"
	"time"

	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// referNotify waits for the next NOTIFY of a REFER on c and checks its
// sipfrag starts with frag and its Subscription-State with state.
func referNotify(t *testing.T, c *siptest.Call, frag, state string) {
	t.Helper()
	select {
	case n := <-c.Notifies():
		if ev := n.GetHeader("Event"); ev == nil || !strings.HasPrefix(ev.Value(), "refer") {
			t.Errorf("NOTIFY event %v", ev)
		}
		if ct := n.ContentType(); ct == nil || !strings.HasPrefix(ct.Value(), "message/sipfrag") {
			t.Errorf("NOTIFY content type %v", ct)
		}
		if ss := n.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), state) {
			t.Errorf("NOTIFY subscription state %v, want %s", ss, state)
		}
		if !strings.HasPrefix(string(n.Body()), frag) {
			t.Errorf("NOTIFY says %q, want %q", n.Body(), frag)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no NOTIFY %q", frag)
	}
}

// TestBlindTransfer is SPEC §11 "Blind transfer": Alice (1001) calls Bob
// (1002), Bob REFERs her to 1003: 202, NOTIFY 100 then 200, Carol's phone
// rings with Alice's identity, and once she answers Alice and Carol talk
// through the relay while Bob's leg is released and hung up.
func TestBlindTransfer(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) { o.ReleaseTimeout = 500 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")

	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 10)
	if err := b.Hold(ctx); err != nil { // desk phones hold before they transfer
		t.Fatalf("hold: %v", err)
	}
	nextReInvite(t, a, "held transferee")
	if st, err := b.Refer(ctx, "sip:1003@"+testDomain); err != nil || st != 202 {
		t.Fatalf("REFER to 1003: %d %v, want 202", st, err)
	}
	referNotify(t, b, "SIP/2.0 100", "active")
	var in *siptest.Incoming
	select {
	case in = <-carol.Incoming():
	case <-ctx.Done():
		t.Fatal("carol's phone did not ring")
	}
	if in.FromUser != "1001" || in.FromDisplay != "Alice Reception" {
		t.Errorf("carol sees the call from %q <%s>, want Alice Reception <1001>", in.FromDisplay, in.FromUser)
	}
	c, err := in.Answer(ctx)
	if err != nil {
		t.Fatalf("carol answers: %v", err)
	}
	offer := nextReInvite(t, a, "transferee")
	if d := siptest.SDPDirection(offer.Body()); d != "sendrecv" && d != "" {
		t.Errorf("transfer re-INVITE offered %q, want sendrecv", d)
	}
	referNotify(t, b, "SIP/2.0 200", "terminated")
	talk(t, ctx, a, c, 30)
	waitDone(t, b, "transferor's leg") // released: the switch hangs it up
	talk(t, ctx, a, c, 10)
	hangUp(t, ctx, c, a, "transferee")
}

// TestBlindTransferFails: a target the switch cannot route is refused
// before the 202, a busy one is reported in the NOTIFY; either way Alice
// and Bob still talk.
func TestBlindTransferFails(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	a, b := call(t, ctx, alice, bob, "1002")

	for _, tc := range []struct {
		target string
		want   int
	}{
		{"sip:1004@" + testDomain, 480},   // Dave has no phone registered
		{"sip:nobody@" + testDomain, 404}, // no such user
		{"sip:1001@" + testDomain, 482},   // the transferee itself
		{"sip:1002@" + testDomain, 482},   // the transferor itself
	} {
		if st, err := b.Refer(ctx, tc.target); err != nil || st != tc.want {
			t.Errorf("REFER to %s: %d %v, want %d", tc.target, st, err, tc.want)
		}
		talk(t, ctx, a, b, 10)
	}

	carol.Busy(true)
	if st, err := b.Refer(ctx, "sip:3003@"+testDomain); err != nil || st != 202 { // Carol's extension
		t.Fatalf("REFER to a busy user: %d %v, want 202", st, err)
	}
	referNotify(t, b, "SIP/2.0 100", "active")
	referNotify(t, b, "SIP/2.0 486", "terminated")
	talk(t, ctx, a, b, 20)
	hangUp(t, ctx, a, b, "transferor")
}

// TestBlindTransferTransferorLeaves: a desk phone that hangs up right after
// the 202 leaves the transferee waiting for the target, who is connected
// on answer; when the target declines instead, the transferee's call ends
// (there is nobody to go back to).
func TestBlindTransferTransferorLeaves(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")

	// transferAndLeave has Bob transfer Alice to Carol and hang up while
	// Carol's phone rings; it returns the ringing call.
	transferAndLeave := func() (*siptest.Call, *siptest.Incoming) {
		a, b := call(t, ctx, alice, bob, "1002")
		if st, err := b.Refer(ctx, "sip:1003@"+testDomain); err != nil || st != 202 {
			t.Fatalf("REFER to 1003: %d %v, want 202", st, err)
		}
		var in *siptest.Incoming
		select {
		case in = <-carol.Incoming():
		case <-ctx.Done():
			t.Fatal("carol's phone did not ring")
		}
		hangUp(t, ctx, b, b, "transferor")
		if !a.Established() {
			t.Fatal("the transferor's hangup ended the transferee's call")
		}
		return a, in
	}

	a, in := transferAndLeave()
	c, err := in.Answer(ctx)
	if err != nil {
		t.Fatalf("carol answers: %v", err)
	}
	nextReInvite(t, a, "transferee")
	talk(t, ctx, a, c, 20)
	hangUp(t, ctx, a, c, "transfer target")

	a, in = transferAndLeave()
	if err := in.Reject(603); err != nil {
		t.Fatal(err)
	}
	waitDone(t, a, "transferee of a failed transfer whose transferor left")
}
