package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestSippInviteReplaces: Alice (1001) calls Bob (1002), both in-process
// phones; SIPp, as Bob's other phone, sends the INVITE with Replaces a desk
// phone sends to take that call over (testdata/sipp/uac_replaces.xml).
// Alice is re-INVITEd and hears SIPp's A-law RTP through the relay, Bob's
// phone gets a BYE, and SIPp's hang-up ends Alice's call.
func TestSippInviteReplaces(t *testing.T) {
	requireSipp(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 10)

	heard := a.RTPReceivedPT(8)
	pull := sippUser(t, ctx, ts, "uac_replaces.xml", "1002", "1001", "-set", "replaces", b.ReplacesID())
	select {
	case offer := <-a.ReInvites():
		if d := siptest.SDPDirection(offer.Body()); d != "sendrecv" && d != "" {
			t.Errorf("the other party was re-INVITEd %q, want sendrecv", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the other party got no re-INVITE\n%s", sippTrace(pull))
	}
	waitDone(t, b, "the replaced phone")
	if r := b.EndReason(); r != siptest.EndRemoteHangup {
		t.Errorf("the replaced phone's call ended %q, want a BYE from the switch", r)
	}
	waitUntil(t, 10*time.Second, "SIPp's A-law RTP at the other party", func() bool { return a.RTPReceivedPT(8)-heard >= 20 })
	pull.wait(t, "INVITE with Replaces")
	if trace := sippTrace(pull); !strings.Contains(trace, "Replaces: "+b.ReplacesID()) {
		t.Errorf("SIPp's INVITE carried no Replaces of Bob's dialog:\n%s", head(trace, 2000))
	}
	waitDone(t, a, "the other party, after SIPp hung up")
}
