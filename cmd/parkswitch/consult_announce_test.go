package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// announcementOf splits what the consult call's phone recorded into the
// music before the park and the stream that followed it: the packets of
// the last SSRC heard. It fails when music went on under the
// announcement (another SSRC after its first packet) or there was no
// music first.
func announcementOf(t *testing.T, pkts []siptest.RTPPacket) []siptest.RTPPacket {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("the call to the park address received no RTP")
	}
	last := pkts[len(pkts)-1].Header.SSRC
	first := len(pkts)
	for i, p := range pkts {
		if p.Header.SSRC == last {
			first = i
			break
		}
	}
	if first == 0 {
		t.Fatal("the last stream the call to the park address heard is the one it heard first: no announcement, or music went on after it")
	}
	for i, p := range pkts[first:] {
		if p.Header.SSRC != last {
			t.Fatalf("packet %d after the announcement began is of SSRC %#x: music under the announcement", first+i, p.Header.SSRC)
		}
	}
	return pkts[first:]
}

// TestAttendedParkAnnounce: with park.announce on (the default), Bob's
// call to the park address, through which he parks Alice by attended
// transfer, stops its music, speaks "parked at one zero" in the law that
// call negotiated, and then the switch hangs it up, whichever of Bob's
// two calls carried the REFER. His held leg to Alice hears nothing.
func TestAttendedParkAnnounce(t *testing.T) {
	for _, tt := range []struct {
		name      string
		onConsult bool // the REFER is sent on the call to the park address
		pt        uint8
		edit      func([]byte) []byte
	}{
		{"REFER on the parked call, PCMU", false, 0, nil},
		{"REFER on the call to the park address, PCMA only", true, 8, siptest.OnlyCodec(8)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, "", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice := phone(t, ctx, ts, "1001", "udp")
			bob := phoneEditing(t, ctx, ts, "1002", tt.edit)
			a, b1 := call(t, ctx, alice, bob, "1002")
			if err := b1.Hold(ctx); err != nil {
				t.Fatalf("hold: %v", err)
			}
			nextReInvite(t, a, "held party")
			b2, err := bob.Dial(ctx, "park")
			if err != nil {
				t.Fatalf("call the park address: %v", err)
			}
			b1.RecordRTP(100)
			b2.RecordRTP(5000)
			rtpFlows(t, b2, 10, "music on the call to the park address")

			refer, named := b1, b2
			if tt.onConsult {
				refer, named = b2, b1
			}
			if st, err := refer.ReferReplaces(ctx, parkURI, named.ReplacesID()); err != nil || st != 202 {
				t.Fatalf("REFER with Replaces to park: %d %v, want 202", st, err)
			}
			if d := siptest.SDPDirection(nextReInvite(t, a, "parked party").Body()); d != "sendonly" {
				t.Errorf("parked party re-INVITEd %q, want sendonly", d)
			}
			referNotify(t, refer, "SIP/2.0 200", "terminated")
			var code string
			select {
			case m := <-bob.Messages():
				_, code, _ = strings.Cut(string(m.Body()), "parked at ")
			case <-time.After(5 * time.Second):
				t.Fatal("no MESSAGE with the park code")
			}
			if code != "10" {
				t.Fatalf("parked at %q, want 10", code)
			}
			// A desk phone hangs up the held call on the NOTIFY; the
			// call to the park address stays up to hear the code.
			if err := b1.Hangup(ctx); err != nil {
				t.Fatalf("parker hangs up the held call: %v", err)
			}
			byeAt := waitBye(t, b2, 10*time.Second)
			checkHeard(t, announcementOf(t, b2.Recorded()), tt.pt, said(t, code, nil), byeAt)
			if n := len(b1.Recorded()); n != 0 {
				t.Errorf("the held leg to the parked party got %d RTP packets, want none", n)
			}
			stillParked(t, ctx, ts, a)
		})
	}
}
