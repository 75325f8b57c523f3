//go:build unix

package main

// Attended transfer (SPEC §11) with Linphone as the transferor: it holds
// the call ("pause"), places a second call, and joins the two with
// "transfer <call> --to-call <call>": a REFER on the held call whose
// Refer-To carries Replaces naming the second call's dialog with the
// switch. The other parties are siptest phones, so the media between them
// is counted packet by packet. (baresip 1.0.0 has no attended transfer.)

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/park"
	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// lpAttendedRE is linphonec's console line for "transfer <id> --to-call <id>".
var lpAttendedRE = func(id, to string) *regexp.Regexp {
	return regexp.MustCompile(`^Performing attended transfer of call ` + id + ` to call ` + to)
}

// lpReferReplacesRE finds in Linphone's log a REFER whose Refer-To names
// user with an escaped Replaces (Linphone writes %3b and %3d).
func lpReferReplacesRE(user string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^REFER sip:[^\n]*\n(?:[^\n]+\n)*Refer-To: *(?:"[^"]*" *)?<sip:` + user + `@` +
		regexp.QuoteMeta(testDomain) + `\?Replaces=[^>;]+%3[bB]from-tag%3[dD][^>;]+%3[bB]to-tag%3[dD][^>]+>`)
}

// linphoneHolds has Linphone pause call id and checks that the switch
// passed the hold on to the other party a.
func linphoneHolds(t *testing.T, lp *linphonePhone, a *siptest.Call, id string) {
	t.Helper()
	lp.send(t, "pause "+id)
	if d := siptest.SDPDirection(nextReInvite(t, a, "held transferee").Body()); d != "sendonly" && d != "inactive" {
		t.Errorf("Linphone's pause reached the transferee as %q, want sendonly or inactive", d)
	}
}

// TestInteropLinphoneAttendedTransfer: Linphone, called by Alice, holds her
// and calls Carol; "transfer 1 --to-call 2" joins Alice and Carol through
// the relay and ends both of Linphone's calls. Then the same to park:
// Linphone's second call is to the park address, Alice is parked with the
// code in a MESSAGE to Linphone, and Carol retrieves her.
func TestInteropLinphoneAttendedTransfer(t *testing.T) {
	requireLinphone(t)
	// Linphone hangs up the held call on the NOTIFY 200, and leaves the
	// other one to the switch, which hangs it up after the release timeout.
	ts := startServer(t, "", func(o *sw.Options) { o.ReleaseTimeout = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("Linphone transfers attended", func(t *testing.T) {
		alice := subtestPhone(t, ctx, ts, "1001")
		carol := subtestPhone(t, ctx, ts, "1003")
		lp := startLinphone(t, ts, "1002", linphoneOptions{autoAnswer: true})

		at, logAt := lp.mark(), lp.logMark()
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			t.Fatalf("call Linphone: %v", err)
		}
		id1 := lp.expect(t, &at, lpIncomingRE, 5*time.Second, "incoming call")[2]
		lp.expect(t, &at, lpConnectedRE(id1), 5*time.Second, "call connected (auto-answer)")
		rtpFlows(t, a, 25, "Linphone's audio at the transferee")
		twoParty := footprint(ts)
		linphoneHolds(t, lp, a, id1)

		id2 := lp.dial(t, &at, "sip:1003@"+testDomain)
		c := answerNext(t, ctx, carol)
		lp.expect(t, &at, lpConnectedRE(id2), 5*time.Second, "call to the transfer target connected")
		rtpFlows(t, c, 25, "Linphone's audio at the transfer target")

		lp.send(t, "transfer "+id1+" --to-call "+id2)
		lp.expect(t, &at, lpAttendedRE(id1, id2), 5*time.Second, "attended transfer started")
		for who, x := range map[string]*siptest.Call{"transfer target": c, "transferee": a} {
			if d := siptest.SDPDirection(nextReInvite(t, x, who).Body()); d != "sendrecv" && d != "" {
				t.Errorf("%s re-INVITEd %q, want sendrecv", who, d)
			}
		}
		ended1, ended2 := at, at
		lp.expect(t, &at, lpTransferedRE(id1), 5*time.Second, "transfer success (NOTIFY sipfrag 200)")
		if m := lp.expect(t, &ended1, lpEndedRE(id1), 5*time.Second, "Linphone's held call to end"); m[2] == "error" {
			t.Error("Linphone ended its held call with an error")
		}
		talk(t, ctx, a, c, 50)
		if m := lp.expect(t, &ended2, lpEndedRE(id2), 5*time.Second, "Linphone's call to the target to end (the switch's BYE)"); m[2] == "error" {
			t.Error("Linphone's call to the target ended with an error")
		}

		log := string(lp.logSince(logAt))
		if !lpReferReplacesRE("1003").MatchString(log) {
			t.Error("Linphone's log holds no REFER with Refer-To sip:1003@" + testDomain + "?Replaces=…")
		}
		if !regexp.MustCompile(`(?m)^SIP/2\.0 202 [^\n]*\n(?:[^\n]+\n)*CSeq: *\d+ REFER`).MatchString(log) {
			t.Error("the switch did not answer Linphone's REFER with 202")
		}
		// Linphone counted Carol's and Alice's packets before the
		// transfer: each of its calls got RTP.
		for i, s := range lp.rtpStats(t, logAt, 2) {
			if s.sent < 25 {
				t.Errorf("Linphone's call %d: %d RTP packets sent, want at least 25", i+1, s.sent)
			}
		}
		settlesTo(t, ts, twoParty, "after the attended transfer")
		talk(t, ctx, a, c, 20)

		hangUp(t, ctx, c, a, "transferee")
		waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	})

	t.Run("Linphone parks attended", func(t *testing.T) {
		alice := subtestPhone(t, ctx, ts, "1001")
		carol := subtestPhone(t, ctx, ts, "1003")
		lp := startLinphone(t, ts, "1002", linphoneOptions{autoAnswer: true})

		at, logAt := lp.mark(), lp.logMark()
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			t.Fatalf("call Linphone: %v", err)
		}
		id1 := lp.expect(t, &at, lpIncomingRE, 5*time.Second, "incoming call")[2]
		lp.expect(t, &at, lpConnectedRE(id1), 5*time.Second, "call connected (auto-answer)")
		rtpFlows(t, a, 25, "Linphone's audio at the caller")
		linphoneHolds(t, lp, a, id1)

		// The switch answers the call to the park address with music.
		id2 := lp.dial(t, &at, parkURI)
		lp.expect(t, &at, lpConnectedRE(id2), 5*time.Second, "call to the park address connected")
		lp.hears(t, lp.logMark(), 40, "music on the call to the park address")

		parkAt := lp.mark()
		lp.send(t, "transfer "+id1+" --to-call "+id2)
		if d := siptest.SDPDirection(nextReInvite(t, a, "parked caller").Body()); d != "sendonly" {
			t.Errorf("parked caller re-INVITEd %q, want sendonly (music on hold)", d)
		}
		rtpFlows(t, a, 25, "music on hold at the parked caller")
		os := ts.sw.Lot().Orbits()
		if len(os) != 1 || os[0].Code != 10 || os[0].Policy != "DemoPark" || os[0].Parker.User != "1002" ||
			os[0].ParkedParty.User != "1001" || os[0].State != park.StateParked {
			t.Fatalf("orbits after Linphone's attended transfer to park = %+v, want 1001 parked at 10 by 1002 in DemoPark", os)
		}
		doneAt, msgAt, end1, end2 := parkAt, parkAt, parkAt, parkAt
		lp.expect(t, &doneAt, lpTransferedRE(id1), 5*time.Second, "transfer success (NOTIFY sipfrag 200)")
		if m := lp.expect(t, &msgAt, lpMessageRE, 5*time.Second, "MESSAGE with the park code"); !strings.Contains(m[2], "parked at 10") {
			t.Errorf("Linphone's chat message from %s says %q, want \"parked at 10\"", m[1], m[2])
		}
		lp.expect(t, &end1, lpEndedRE(id1), 5*time.Second, "Linphone's held call to end")
		// The call to the park address hears the code, then the switch's BYE.
		lp.expect(t, &end2, lpEndedRE(id2), 10*time.Second, "the call to the park address to end")
		if !lpReferReplacesRE("park").MatchString(string(lp.logSince(logAt))) {
			t.Error("Linphone's log holds no REFER with Refer-To sip:park@" + testDomain + "?Replaces=…")
		}
		waitUntil(t, 5*time.Second, "Linphone's calls gone from the switch", func() bool { return ts.sw.Dialogs() == 1 })
		if !a.Established() {
			t.Fatal("the parked call was dropped when Linphone's calls ended")
		}
		rtpFlows(t, a, 10, "music on hold after Linphone's calls ended")

		c, err := carol.Dial(ctx, "10")
		if err != nil {
			t.Fatalf("retrieve 10: %v", err)
		}
		if d := siptest.SDPDirection(nextReInvite(t, a, "retrieved caller").Body()); d != "sendrecv" && d != "" {
			t.Errorf("retrieve re-INVITE offered %q, want sendrecv", d)
		}
		talk(t, ctx, a, c, 30)
		if n := len(ts.sw.Lot().Orbits()); n != 0 {
			t.Errorf("%d orbits left after the retrieve", n)
		}
		hangUp(t, ctx, c, a, "retrieved caller")
		waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	})
}
