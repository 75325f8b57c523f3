//go:build unix

package main

// Blind transfer (SPEC §11) with real softphones: baresip and Linphone
// transfer a call through the switch to a third user (REFER with a plain
// Refer-To), and are themselves transferred by a siptest phone. (baresip
// 1.0.0 ends its own call when a transfer fails, so only Linphone shows
// the failed transfer leaving the call up.) The
// transferee and the target are siptest phones where the softphone is the
// transferor, so the media between them is counted packet by packet; a
// softphone's own audio is counted by the softphone.

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// ringTarget waits for the transfer target's phone to ring with the
// transferee's identity, rings it (180) and answers.
func ringTarget(t *testing.T, ctx context.Context, target *siptest.Phone, transferee string) *siptest.Call {
	t.Helper()
	var in *siptest.Incoming
	select {
	case in = <-target.Incoming():
	case <-time.After(5 * time.Second):
		t.Fatal("the transfer target's phone did not ring")
	}
	if in.FromUser != transferee {
		t.Errorf("the transfer target sees the call from %q, want the transferee %s", in.FromUser, transferee)
	}
	if err := in.Ring(); err != nil {
		t.Fatalf("target rings: %v", err)
	}
	c, err := in.Answer(ctx)
	if err != nil {
		t.Fatalf("target answers: %v", err)
	}
	return c
}

// subtestPhone is a siptest phone of user that unregisters when the
// subtest ends: a later subtest's call to the same user must not fork to
// its closed socket.
func subtestPhone(t *testing.T, ctx context.Context, ts *testServer, user string) *siptest.Phone {
	t.Helper()
	p := phone(t, ctx, ts, user, "udp")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := p.Unregister(ctx); err != nil {
			t.Errorf("unregister %s: %v", user, err)
		}
	})
	return p
}

// callFootprint is what the switch holds for one call in progress.
type callFootprint struct{ dialogs, ports int }

func footprint(ts *testServer) callFootprint {
	return callFootprint{dialogs: ts.sw.Dialogs(), ports: ts.ports.InUse()}
}

// settlesTo waits until the switch holds exactly want: after a transfer,
// what a two-party call holds, so nothing of the transferor's leg is left.
func settlesTo(t *testing.T, ts *testServer, want callFootprint, what string) {
	t.Helper()
	var got callFootprint
	waitUntil(t, 5*time.Second, what, func() bool { got = footprint(ts); return got == want })
	if got != want {
		t.Errorf("%s: the switch holds %d dialogs and %d RTP ports, want %d and %d as in a two-party call",
			what, got.dialogs, got.ports, want.dialogs, want.ports)
	}
}

// transferorHangsUp has a siptest transferor wait for the NOTIFYs of its
// blind transfer (100, then 200) and hang up, as a desk phone does.
func transferorHangsUp(t *testing.T, ctx context.Context, b *siptest.Call) {
	t.Helper()
	referNotify(t, b, "SIP/2.0 100", "active")
	referNotify(t, b, "SIP/2.0 200", "terminated")
	if err := b.Hangup(ctx); err != nil {
		t.Fatalf("transferor hangs up: %v", err)
	}
}

// TestInteropBaresipTransfer: baresip blind-transfers a siptest caller to
// a siptest user (straight from the call, and after putting it on hold),
// and a baresip caller is blind-transferred by the siptest phone it called.
func TestInteropBaresipTransfer(t *testing.T) {
	requireBaresip(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, hold := range []bool{false, true} {
		name := "baresip transfers"
		if hold {
			name = "baresip holds, then transfers"
		}
		t.Run(name, func(t *testing.T) {
			alice := subtestPhone(t, ctx, ts, "1001")
			carol := subtestPhone(t, ctx, ts, "1003")
			bob := startBaresip(t, ts, "1002", hostAccount)
			bm := bob.mark()

			a, err := alice.Dial(ctx, "1002") // baresip answers by itself
			if err != nil {
				t.Fatalf("call baresip: %v", err)
			}
			bob.expect(&bm, "CALL_ESTABLISHED")
			if err := a.SendRTP(ctx, 50, 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			rtpFlows(t, a, 25, "baresip's audio at the caller")
			twoParty := footprint(ts)
			if hold {
				bob.do("hold", "")
				if d := siptest.SDPDirection(nextReInvite(t, a, "held transferee").Body()); d != "sendonly" {
					t.Errorf("baresip's hold reached the transferee as %q, want sendonly", d)
				}
			}

			// REFER Refer-To sip:1003@<baresip's domain>: 202, NOTIFY 100,
			// Carol rings with Alice's identity and answers, the switch
			// re-INVITEs Alice to her, NOTIFY 200, and baresip hangs up
			// its leg by itself (the release timer is 30 s away).
			bob.do("transfer", "1003")
			c := ringTarget(t, ctx, carol, "1001")
			if d := siptest.SDPDirection(nextReInvite(t, a, "transferee").Body()); d != "sendrecv" && d != "" {
				t.Errorf("the transfer re-INVITE offered the transferee %q, want sendrecv", d)
			}
			if ev := bob.expect(&bm, "CALL_CLOSED"); !strings.Contains(ev.Param, "transfer") {
				t.Errorf("baresip's call closed with %q, want the transfer to have succeeded", ev.Param)
			}
			talk(t, ctx, a, c, 50)

			// baresip 1.0.0 completes the target with its account's host
			// and sends it without angle brackets.
			if bob.findSIP("REFER ", "\nRefer-To: sip:1003@") == "" {
				t.Error("baresip sent no REFER to sip:1003@…")
			}
			if bob.findSIP("SIP/2.0 202 ", "REFER\n") == "" {
				t.Error("the switch did not answer baresip's REFER with 202")
			}
			for _, frag := range []string{"SIP/2.0 100", "SIP/2.0 200"} {
				if bob.findSIP("NOTIFY ", "Event: refer", "message/sipfrag", "\n\n"+frag) == "" {
					t.Errorf("baresip got no NOTIFY with sipfrag %s", frag)
				}
			}
			if bob.findSIP("BYE ") == "" {
				t.Error("baresip did not hang up its leg itself")
			}
			var st []rtpStats
			waitUntil(t, 2*time.Second, "baresip's rtp_stats at hang-up", func() bool { st = bob.hangupStats(); return len(st) == 1 })
			if len(st) == 1 && (st[0].tx < 25 || st[0].rx < 25) {
				t.Errorf("baresip: RTP tx %d rx %d packets before the transfer, want at least 25 each way", st[0].tx, st[0].rx)
			}
			settlesTo(t, ts, twoParty, "after the transfer")
			talk(t, ctx, a, c, 20)

			hangUp(t, ctx, c, a, "transferee")
			waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
		})
	}

	t.Run("baresip is transferred", func(t *testing.T) {
		alice := startBaresip(t, ts, "1001", hostAccount)
		bob := subtestPhone(t, ctx, ts, "1002")
		carol := subtestPhone(t, ctx, ts, "1003")
		am := alice.mark()

		alice.do("dial", "1002")
		b := answerNext(t, ctx, bob)
		alice.expect(&am, "CALL_ESTABLISHED")
		rtpFlows(t, b, 25, "baresip's audio at the callee")
		twoParty := footprint(ts)

		if st, err := b.Refer(ctx, "sip:1003@"+testDomain); err != nil || st != 202 {
			t.Fatalf("REFER to 1003: %d %v, want 202", st, err)
		}
		c := ringTarget(t, ctx, carol, "1001")
		transferorHangsUp(t, ctx, b)

		// baresip takes the switch's re-INVITE and talks to Carol: her
		// packets counted by baresip, baresip's tone by her phone.
		sent := make(chan error, 1)
		go func() { sent <- c.SendRTP(ctx, 250, 20*time.Millisecond) }()
		alice.hears(100, "audio from the transfer target")
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		rtpFlows(t, c, 50, "baresip's audio at the transfer target")
		if r := alice.audio().remote; r < ts.cfg.Media.RTPPortMin || r > ts.cfg.Media.RTPPortMax {
			t.Errorf("baresip sends RTP to port %d after the transfer, not to the switch's relay", r)
		}
		if _, _, err := alice.waitEvent(am, "CALL_CLOSED", 0); err == nil {
			t.Fatal("baresip's call was closed by the transfer")
		}
		settlesTo(t, ts, twoParty, "after the transfer")

		alice.do("hangup", "")
		alice.expect(&am, "CALL_CLOSED")
		waitDone(t, c, "transfer target")
		waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	})
}

// TestInteropLinphoneTransfer: Linphone blind-transfers a siptest caller
// to a siptest user with "transfer <id> <uri>"; a transfer to a busy user
// fails and the call stays up; and Linphone, having called a siptest
// phone, is transferred by it.
func TestInteropLinphoneTransfer(t *testing.T) {
	requireLinphone(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("Linphone transfers", func(t *testing.T) {
		alice := subtestPhone(t, ctx, ts, "1001")
		carol := subtestPhone(t, ctx, ts, "1003")
		lp := startLinphone(t, ts, "1002", linphoneOptions{autoAnswer: true})

		at, logAt := lp.mark(), lp.logMark()
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			t.Fatalf("call Linphone: %v", err)
		}
		id := lp.expect(t, &at, lpIncomingRE, 5*time.Second, "incoming call")[2]
		lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected (auto-answer)")
		if err := a.SendRTP(ctx, 50, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		rtpFlows(t, a, 25, "Linphone's audio at the caller")
		twoParty := footprint(ts)

		// liblinphone REFERs, and on the NOTIFY sipfrag 200 reports the
		// transfer done and hangs up its leg by itself.
		lp.send(t, "transfer "+id+" sip:1003@"+testDomain)
		c := ringTarget(t, ctx, carol, "1001")
		if d := siptest.SDPDirection(nextReInvite(t, a, "transferee").Body()); d != "sendrecv" && d != "" {
			t.Errorf("the transfer re-INVITE offered the transferee %q, want sendrecv", d)
		}
		doneAt := at
		lp.expect(t, &doneAt, lpTransferedRE(id), 5*time.Second, "transfer success (NOTIFY sipfrag 200)")
		if m := lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "Linphone's leg to end after the transfer"); m[2] == "error" {
			t.Error("Linphone ended its leg with an error")
		}
		talk(t, ctx, a, c, 50)

		log := string(lp.logSince(logAt))
		if !regexp.MustCompile(`(?m)^REFER sip:[^\n]*\n(?:[^\n]+\n)*Refer-To: *<?sip:1003@` + regexp.QuoteMeta(testDomain)).MatchString(log) {
			t.Error("Linphone's log holds no REFER with Refer-To sip:1003@" + testDomain)
		}
		if !strings.Contains(log, "BYE sip:") {
			t.Error("Linphone did not hang up its leg itself")
		}
		if s := lp.rtpStats(t, logAt, 1)[0]; s.sent < 25 || s.received < 45 {
			t.Errorf("Linphone: RTP sent %d received %d before the transfer, want at least 25 sent and the caller's 50", s.sent, s.received)
		}
		settlesTo(t, ts, twoParty, "after the transfer")

		hangUp(t, ctx, a, c, "transfer target")
		waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	})

	t.Run("Linphone transfers to a busy user", func(t *testing.T) {
		// SPEC §11: a failed target leaves the call as it was. The switch
		// reports the 486 in the NOTIFY; Linphone keeps its call.
		alice := subtestPhone(t, ctx, ts, "1001")
		carol := subtestPhone(t, ctx, ts, "1003")
		carol.Busy(true)
		lp := startLinphone(t, ts, "1002", linphoneOptions{autoAnswer: true})

		at, logAt := lp.mark(), lp.logMark()
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			t.Fatalf("call Linphone: %v", err)
		}
		id := lp.expect(t, &at, lpIncomingRE, 5*time.Second, "incoming call")[2]
		lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected (auto-answer)")
		rtpFlows(t, a, 25, "Linphone's audio at the caller")
		twoParty := footprint(ts)

		lp.send(t, "transfer "+id+" sip:1003@"+testDomain)
		notify := regexp.MustCompile(`(?m)^NOTIFY sip:[^\n]*\n(?:[^\n]+\n)*\n*SIP/2\.0 486`)
		waitUntil(t, 5*time.Second, "NOTIFY sipfrag 486 at Linphone", func() bool { return notify.Match(lp.logSince(logAt)) })
		if m, _ := lp.scan(&at, lpEndedRE(id)); m != nil {
			t.Fatal("Linphone's call ended after the failed transfer")
		}
		if !a.Established() {
			t.Fatal("the transferee's call ended after the failed transfer")
		}
		// Both ways still: Linphone's tone at Alice, Alice's packets
		// counted by Linphone at hang-up.
		rtpFlows(t, a, 25, "Linphone's audio at the caller after the failed transfer")
		if err := a.SendRTP(ctx, 100, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		settlesTo(t, ts, twoParty, "after the failed transfer")
		time.Sleep(100 * time.Millisecond)
		if err := a.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "call ended by the caller")
		if s := lp.rtpStats(t, logAt, 1)[0]; s.received < 90 {
			t.Errorf("Linphone received %d of the caller's 100 RTP packets after the failed transfer", s.received)
		}
		waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	})

	t.Run("Linphone is transferred", func(t *testing.T) {
		bob := subtestPhone(t, ctx, ts, "1002")
		carol := subtestPhone(t, ctx, ts, "1003")
		lp := startLinphone(t, ts, "1001", linphoneOptions{})

		at, logAt := lp.mark(), lp.logMark()
		id := lp.dial(t, &at, "sip:1002@"+testDomain)
		b := answerNext(t, ctx, bob)
		lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected")
		rtpFlows(t, b, 25, "Linphone's audio at the callee")
		twoParty := footprint(ts)

		if st, err := b.Refer(ctx, "sip:1003@"+testDomain); err != nil || st != 202 {
			t.Fatalf("REFER to 1003: %d %v, want 202", st, err)
		}
		c := ringTarget(t, ctx, carol, "1001")
		transferorHangsUp(t, ctx, b)

		// Linphone takes the switch's re-INVITE and talks to Carol.
		rtpFlows(t, c, 50, "Linphone's audio at the transfer target")
		xferAt := lp.logMark()
		sent := make(chan error, 1)
		go func() { sent <- c.SendRTP(ctx, 150, 20*time.Millisecond) }()
		lp.hears(t, xferAt, 40, "audio from the transfer target")
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if src := c.RTPSource(); lp.ownsPort(src.Port()) {
			t.Errorf("RTP at the transfer target comes from Linphone's own port %v, not the relay", src)
		}
		if m, _ := lp.scan(&at, lpEndedRE(id)); m != nil {
			t.Fatal("Linphone's call was ended by the transfer")
		}
		settlesTo(t, ts, twoParty, "after the transfer")

		lp.send(t, "terminate "+id)
		lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "call ended")
		waitDone(t, c, "transfer target")
		stats := lp.rtpStats(t, logAt, 1)
		if last := stats[len(stats)-1]; last.received < 135 {
			t.Errorf("Linphone received %d RTP packets over the call, want (nearly) all of the target's 150", last.received)
		}
		waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	})
}
