package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// liveNoReInvite checks that the switch has not re-INVITEd c.
func liveNoReInvite(t *testing.T, c *siptest.Call, what string) {
	t.Helper()
	select {
	case r := <-c.ReInvites():
		t.Errorf("%s was re-INVITEd (%s)", what, siptest.SDPDirection(r.Body()))
	default:
	}
}

// TestAttendedTransfer is SPEC §11 "Attended transfer" as a desk phone
// does it: Alice (1001) calls Bob (1002), Bob holds her and calls Carol
// (1003), then REFERs Alice's call with Replaces naming his call with
// Carol. Carol and Alice are re-INVITEd toward each other and talk through
// the relay; Bob gets NOTIFY 200 and both of his legs end, hung up by his
// phone or, when it does not, by the switch.
func TestAttendedTransfer(t *testing.T) {
	for _, phoneHangsUp := range []bool{true, false} {
		name := "the transferor hangs up"
		if !phoneHangsUp {
			name = "the switch releases the transferor"
		}
		t.Run(name, func(t *testing.T) {
			s := startLive(t, func(o *Options) { o.ReleaseTimeout = 300 * time.Millisecond })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")

			a, b1 := liveCall(t, ctx, alice, bob, "1002")
			liveTalk(t, ctx, a, b1, 10)
			if err := b1.Hold(ctx); err != nil {
				t.Fatalf("hold: %v", err)
			}
			liveReInvited(t, a, "held transferee")
			b2, c := liveCall(t, ctx, bob, carol, "1003")
			liveTalk(t, ctx, b2, c, 10)

			st, err := b1.ReferReplaces(ctx, "sip:1003@"+liveDomain, b2.ReplacesID())
			if err != nil || st != 202 {
				t.Fatalf("REFER with Replaces: %d %v, want 202", st, err)
			}
			for who, call := range map[string]*siptest.Call{"transfer target": c, "transferee": a} {
				if d := siptest.SDPDirection(liveReInvited(t, call, who).Body()); d != "sendrecv" && d != "" {
					t.Errorf("%s re-INVITEd %q, want sendrecv", who, d)
				}
			}
			liveReferState(t, b1, "SIP/2.0 200")
			liveTalk(t, ctx, a, c, 30)
			if phoneHangsUp {
				for _, b := range []*siptest.Call{b1, b2} {
					if err := b.Hangup(ctx); err != nil {
						t.Errorf("transferor hangs up: %v", err)
					}
				}
			}
			liveEnded(t, b1, "transferor's leg to the transferee")
			liveEnded(t, b2, "transferor's leg to the target")
			liveTalk(t, ctx, a, c, 10)
			if n := s.ActiveCalls(); n != 1 {
				t.Errorf("%d calls after the transfer, want 1", n)
			}
			if err := c.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveEnded(t, a, "transferee")
		})
	}
}

// TestAttendedTransferRefused: Replaces naming no dialog of the switch is
// accepted and fails with NOTIFY 481 (so is one with its tags the wrong
// way round); a dialog of another user or of the call itself is refused
// with 403, and a malformed one with 400. The calls go on as they were.
func TestAttendedTransferRefused(t *testing.T) {
	s := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")
	a, b1 := liveCall(t, ctx, alice, bob, "1002")
	b2, c := liveCall(t, ctx, bob, carol, "1003")

	cid, rest, _ := strings.Cut(b2.ReplacesID(), ";")
	to, from, _ := strings.Cut(rest, ";")
	swapped := cid + ";" + strings.Replace(from, "from-tag", "to-tag", 1) + ";" + strings.Replace(to, "to-tag", "from-tag", 1)
	for _, tt := range []struct {
		name, replaces string
		status         int
		notify         string
	}{
		{"no such dialog", "nosuch@127.0.0.1;to-tag=1;from-tag=2", 202, "SIP/2.0 481"},
		{"tags the wrong way round", swapped, 202, "SIP/2.0 481"},
		{"the transferee's dialog", a.ReplacesID(), 403, ""},
		{"the target's dialog", c.ReplacesID(), 403, ""},
		{"the dialog of the REFER", b1.ReplacesID(), 403, ""},
		{"malformed", "just-a-call-id", 400, ""},
	} {
		st, err := b1.ReferReplaces(ctx, "sip:1003@"+liveDomain, tt.replaces)
		if err != nil || st != tt.status {
			t.Errorf("%s: REFER %d %v, want %d", tt.name, st, err, tt.status)
		}
		if tt.notify != "" {
			liveReferState(t, b1, tt.notify)
		}
		liveTalk(t, ctx, a, b1, 10)
		liveTalk(t, ctx, b2, c, 10)
	}
	liveNoReInvite(t, a, "the transferee")
	liveNoReInvite(t, c, "the target")
	for _, x := range []*siptest.Call{a, b2} {
		if err := x.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	liveEnded(t, b1, "transferor")
	liveEnded(t, c, "target")
}

// TestInviteReplaces: an INVITE with Replaces naming Bob's leg of his call
// with Alice, from Bob's other phone, takes that call over (RFC 3891 §3):
// Alice is re-INVITEd to the new phone, the old one gets BYE. A dialog the
// switch does not hold is 481, and so is an early one; a caller who is no
// party to the call gets 403, early-only for a confirmed dialog 486, two
// Replaces 400; the call goes on meanwhile.
func TestInviteReplaces(t *testing.T) {
	s := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")
	a, b := liveCall(t, ctx, alice, bob, "1002")
	desk := s.phone(t, ctx, "1002") // registered after the call, so it did not ring

	for _, tt := range []struct {
		name     string
		from     *siptest.Phone
		replaces string
		want     int
	}{
		{"no such dialog", desk, "nosuch@127.0.0.1;to-tag=1;from-tag=2", 481},
		{"no party to the call", carol, b.ReplacesID(), 403},
		{"early-only", desk, b.ReplacesID() + ";early-only", 486},
		{"two Replaces", desk, "", 400},
	} {
		var err error
		if tt.replaces == "" {
			_, err = desk.DialReplaces(ctx, "1002", b.ReplacesID(), b.ReplacesID())
		} else {
			_, err = tt.from.DialReplaces(ctx, "1002", tt.replaces)
		}
		if siptest.StatusCode(err) != tt.want {
			t.Errorf("%s: INVITE with Replaces got %v, want %d", tt.name, err, tt.want)
		}
		liveTalk(t, ctx, a, b, 10)
	}
	liveNoReInvite(t, a, "the other party")

	d, err := desk.DialReplaces(ctx, "1002", b.ReplacesID())
	if err != nil {
		t.Fatalf("INVITE with Replaces: %v", err)
	}
	if dir := siptest.SDPDirection(liveReInvited(t, a, "the other party").Body()); dir != "sendrecv" && dir != "" {
		t.Errorf("the other party was re-INVITEd %q, want sendrecv", dir)
	}
	liveEnded(t, b, "the replaced leg")
	if r := b.EndReason(); r != siptest.EndRemoteHangup {
		t.Errorf("the replaced leg ended %q, want a BYE from the switch", r)
	}
	liveTalk(t, ctx, a, d, 30)
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	liveEnded(t, d, "the replacing phone")

	// An early dialog: the switch's INVITE still ringing at Carol's phone.
	ringing, err := bob.DialAsync(ctx, "1003")
	if err != nil {
		t.Fatal(err)
	}
	var in *siptest.Incoming
	select {
	case in = <-carol.Incoming():
		if _, err := desk.DialReplaces(ctx, "1003", in.ReplacesID()); siptest.StatusCode(err) != 481 {
			t.Errorf("INVITE with Replaces naming an early dialog got %v, want 481", err)
		}
	case <-ctx.Done():
		t.Fatal("carol's phone did not ring")
	}
	if err := ringing.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// The switch's CANCEL reaches Carol's phone before the phones close.
	select {
	case <-in.Canceled():
	case <-ctx.Done():
		t.Fatal("the switch did not cancel its INVITE to carol")
	}
}

// TestAttendedPark is an attended transfer to park as desk phones do it:
// Bob holds Alice, calls the park address (the switch answers with music
// on hold), and completes with a REFER whose Replaces names the other
// call: on Alice's call naming the call to the park address, or on that
// call naming Alice's. Alice is parked as by a blind park (music, NOTIFY
// 200, the code in a MESSAGE, the orbit in Bob's policy), both of Bob's
// legs end, and Carol retrieves Alice with the code.
func TestAttendedPark(t *testing.T) {
	for _, onConsult := range []bool{false, true} {
		name := "REFER on the parked call"
		if onConsult {
			name = "REFER on the call to the park address"
		}
		t.Run(name, func(t *testing.T) {
			s := startLive(t, func(o *Options) { o.ReleaseTimeout = 300 * time.Millisecond })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")
			a, b1 := liveCall(t, ctx, alice, bob, "1002")
			if err := b1.Hold(ctx); err != nil {
				t.Fatalf("hold: %v", err)
			}
			liveReInvited(t, a, "held party")
			b2, err := bob.Dial(ctx, "park")
			if err != nil {
				t.Fatalf("call the park address: %v", err)
			}
			liveHears(t, b2, 10, "music on the call to the park address")

			refer, named, notified := b1, b2, b1
			if onConsult {
				refer, named, notified = b2, b1, b2
			}
			if st, err := refer.ReferReplaces(ctx, "sip:park@"+liveDomain, named.ReplacesID()); err != nil || st != 202 {
				t.Fatalf("REFER with Replaces to park: %d %v, want 202", st, err)
			}
			if d := siptest.SDPDirection(liveReInvited(t, a, "parked party").Body()); d != "sendonly" {
				t.Errorf("parked party re-INVITEd %q, want sendonly", d)
			}
			liveHears(t, a, 10, "music at the parked party")
			liveReferState(t, notified, "SIP/2.0 200")
			code := liveParkedCode(t, bob)
			if os := s.Lot().Orbits(); len(os) != 1 || os[0].Policy != "DemoPark" || os[0].Parker.User != "1002" ||
				os[0].ParkedParty.User != "1001" || os[0].State != park.StateParked {
				t.Errorf("orbits %+v, want Alice parked by Bob in DemoPark", os)
			}
			if !onConsult { // the other way round, the switch hangs up
				for _, b := range []*siptest.Call{b1, b2} {
					if err := b.Hangup(ctx); err != nil {
						t.Errorf("parker hangs up: %v", err)
					}
				}
			}
			liveEnded(t, b1, "parker's leg to the parked party")
			liveEnded(t, b2, "parker's call to the park address")
			liveHears(t, a, 10, "music after the parker left")

			c, err := carol.Dial(ctx, code)
			if err != nil {
				t.Fatalf("retrieve %s: %v", code, err)
			}
			liveReInvited(t, a, "retrieved party")
			liveTalk(t, ctx, a, c, 30)
			if err := c.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveEnded(t, a, "retrieved party")
		})
	}
}

// liveParkedCode reads the code from the MESSAGE the parker's phone gets.
func liveParkedCode(t *testing.T, p *siptest.Phone) string {
	t.Helper()
	select {
	case m := <-p.Messages():
		_, code, ok := strings.Cut(string(m.Body()), "parked at ")
		if !ok {
			t.Fatalf("MESSAGE to the parker says %q", m.Body())
		}
		return strings.TrimSpace(code)
	case <-time.After(5 * time.Second):
		t.Fatal("no MESSAGE with the park code")
	}
	return ""
}

// TestParkConsult: a user whose policy does not allow park calling the
// park address gets 403; a call to it that parks nothing is hung up by
// the switch after ConsultTimeout, and a REFER on it that names no other
// call parks nothing (403).
func TestParkConsult(t *testing.T) {
	s := startLive(t, func(o *Options) { o.ConsultTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dave, bob := s.phone(t, ctx, "1004"), s.phone(t, ctx, "1002")
	if _, err := dave.Dial(ctx, "park"); siptest.StatusCode(err) != 403 {
		t.Errorf("1004 (Global, no park) calls the park address: %v, want 403", err)
	}
	b, err := bob.Dial(ctx, "park")
	if err != nil {
		t.Fatalf("call the park address: %v", err)
	}
	liveHears(t, b, 10, "music on the call to the park address")
	if st, err := b.Refer(ctx, "sip:park@"+liveDomain); err != nil || st != 403 {
		t.Errorf("REFER to park on the call to the park address: %d %v, want 403", st, err)
	}
	start := time.Now()
	liveEnded(t, b, "the call to the park address")
	if r := b.EndReason(); r != siptest.EndRemoteHangup {
		t.Errorf("call to the park address ended %q, want a BYE from the switch", r)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("hung up %v after the music started, want about 1 s", took)
	}
}
