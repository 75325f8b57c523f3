package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// liveReferTrying waits for the NOTIFY 100 Trying of a REFER on c, its
// subscription still active.
func liveReferTrying(t *testing.T, c *siptest.Call) {
	t.Helper()
	select {
	case n := <-c.Notifies():
		if ss := n.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), "active") {
			t.Errorf("NOTIFY subscription state %v, want active", ss)
		}
		if !strings.HasPrefix(string(n.Body()), "SIP/2.0 100") {
			t.Errorf("NOTIFY says %q, want SIP/2.0 100", n.Body())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY 100 Trying")
	}
}

// semiSetup is Alice (1001) talking to Bob (1002), held by him, and Bob's
// call to Carol (1003) ringing at her phone.
type semiSetup struct {
	s         *live
	alice     *siptest.Phone
	bob       *siptest.Phone
	a, b1     *siptest.Call
	consult   *siptest.Call     // Bob's INVITE to Carol, ringing
	carolRing *siptest.Incoming // it, at Carol's phone
}

func startSemi(t *testing.T, ctx context.Context) semiSetup {
	t.Helper()
	s := startLive(t, func(o *Options) { o.ReleaseTimeout = 300 * time.Millisecond })
	st := semiSetup{s: s}
	st.alice, st.bob = s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002")
	carol := s.phone(t, ctx, "1003")
	st.a, st.b1 = liveCall(t, ctx, st.alice, st.bob, "1002")
	liveTalk(t, ctx, st.a, st.b1, 10)
	if err := st.b1.Hold(ctx); err != nil {
		t.Fatalf("hold: %v", err)
	}
	liveReInvited(t, st.a, "held transferee")
	var err error
	if st.consult, err = st.bob.DialAsync(ctx, "1003"); err != nil {
		t.Fatal(err)
	}
	select {
	case st.carolRing = <-carol.Incoming():
	case <-time.After(5 * time.Second):
		t.Fatal("Carol's phone did not ring")
	}
	if st.carolRing.FromUser != "1002" {
		t.Errorf("Carol's phone shows %q calling, want Bob", st.carolRing.FromUser)
	}
	if err := st.carolRing.Ring(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.consult.Ringing():
	case <-time.After(5 * time.Second):
		t.Fatal("Bob's phone heard no ringing")
	}
	return st
}

// transfer has Bob REFER Alice's call naming his ringing INVITE, and
// checks the 202, the 487 that ends his INVITE, and NOTIFY 100.
func (st semiSetup) transfer(t *testing.T, ctx context.Context) {
	t.Helper()
	id := st.consult.EarlyReplacesID()
	if id == "" {
		t.Fatal("no early dialog to name")
	}
	if code, err := st.b1.ReferReplaces(ctx, "sip:1003@"+liveDomain, id); err != nil || code != 202 {
		t.Fatalf("REFER with Replaces naming the ringing call: %d %v, want 202", code, err)
	}
	wctx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	if err := st.consult.Wait(wctx); siptest.StatusCode(err) != 487 {
		t.Errorf("Bob's INVITE to Carol ended with %v, want 487", err)
	}
	liveReferTrying(t, st.b1)
}

// stillRinging checks that Carol's phone was not cancelled.
func (st semiSetup) stillRinging(t *testing.T) {
	t.Helper()
	select {
	case <-st.carolRing.Canceled():
		t.Fatal("Carol's phone stopped ringing")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSemiAttendedTransfer: Bob, Alice on hold, calls Carol and transfers
// Alice while Carol's phone still rings (REFER with Replaces naming his
// early dialog with the switch). His INVITE gets 487 and NOTIFY 100
// follows; Carol's phone rings on, and when she answers her answer goes
// to Alice in a re-INVITE: they talk through the relay, Bob gets NOTIFY
// 200 and his leg is released. The switch then holds what a two-party
// call holds. The same when Bob hangs up right after the REFER.
func TestSemiAttendedTransfer(t *testing.T) {
	for _, early := range []bool{false, true} {
		name := "Bob hangs up on the NOTIFY 200"
		if early {
			name = "Bob hangs up while Carol rings"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st := startSemi(t, ctx)
			st.transfer(t, ctx)
			if early {
				if err := st.b1.Hangup(ctx); err != nil {
					t.Fatal(err)
				}
			}
			st.stillRinging(t)
			liveNoReInvite(t, st.a, "the transferee while the target rings")
			c, err := st.carolRing.Answer(ctx)
			if err != nil {
				t.Fatalf("Carol answers: %v", err)
			}
			if d := siptest.SDPDirection(liveReInvited(t, st.a, "transferee").Body()); d != "sendrecv" && d != "" {
				t.Errorf("transferee re-INVITEd %q, want sendrecv", d)
			}
			if !early {
				liveReferState(t, st.b1, "SIP/2.0 200")
				if err := st.b1.Hangup(ctx); err != nil {
					t.Fatal(err)
				}
			}
			liveTalk(t, ctx, st.a, c, 30)
			liveEnded(t, st.b1, "the transferor's leg")
			liveSettled(t, "a two-party call's footprint", func() bool {
				return st.s.ActiveCalls() == 1 && st.s.Dialogs() == 2 && st.s.ports.InUse() == 2
			})
			liveTalk(t, ctx, st.a, c, 10)
			if err := c.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveEnded(t, st.a, "transferee")
		})
	}
}

// TestSemiAttendedTransferFails: Carol declines (603) the call that was
// handed over: Bob gets NOTIFY 603 and Alice's call stays as it was,
// until Bob takes her off hold and they talk again; when Bob had hung up
// meanwhile, Alice's call ends. Alice hanging up while Carol rings stops
// the ringing.
func TestSemiAttendedTransferFails(t *testing.T) {
	t.Run("Carol declines", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st := startSemi(t, ctx)
		st.transfer(t, ctx)
		if err := st.carolRing.Reject(603); err != nil {
			t.Fatal(err)
		}
		liveReferState(t, st.b1, "SIP/2.0 603")
		liveNoReInvite(t, st.a, "the transferee")
		if err := st.b1.Resume(ctx); err != nil {
			t.Fatalf("resume: %v", err)
		}
		liveReInvited(t, st.a, "resumed transferee")
		liveTalk(t, ctx, st.a, st.b1, 20)
		liveSettled(t, "one call left", func() bool { return st.s.ActiveCalls() == 1 && st.s.Dialogs() == 2 })
		if err := st.a.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		liveEnded(t, st.b1, "transferor")
	})
	t.Run("Bob hung up, Carol declines", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st := startSemi(t, ctx)
		st.transfer(t, ctx)
		if err := st.b1.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.carolRing.Reject(486); err != nil {
			t.Fatal(err)
		}
		liveEnded(t, st.a, "transferee left with nobody")
		if r := st.a.EndReason(); r != siptest.EndRemoteHangup {
			t.Errorf("transferee's call ended %q, want the switch's BYE", r)
		}
	})
	t.Run("Alice hangs up while Carol rings", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st := startSemi(t, ctx)
		st.transfer(t, ctx)
		if err := st.a.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-st.carolRing.Canceled():
		case <-time.After(5 * time.Second):
			t.Fatal("Carol's phone rings on after the transferee hung up")
		}
		liveEnded(t, st.b1, "transferor")
	})
}

// TestSemiAttendedRefused: a REFER naming a ringing call of another user
// is refused with 403, and one naming a ringing call whose caller has
// cancelled it fails with NOTIFY 481; the calls go on as they were.
func TestSemiAttendedRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := startSemi(t, ctx)
	dave := st.s.phone(t, ctx, "1004")
	// Alice's call, Dave ringing: Bob may not name it.
	other, err := st.alice.DialAsync(ctx, "1004")
	if err != nil {
		t.Fatal(err)
	}
	var daveRing *siptest.Incoming
	select {
	case daveRing = <-dave.Incoming():
	case <-time.After(5 * time.Second):
		t.Fatal("Dave's phone did not ring")
	}
	if err := daveRing.Ring(); err != nil {
		t.Fatal(err)
	}
	<-other.Ringing()
	if code, err := st.b1.ReferReplaces(ctx, "sip:1004@"+liveDomain, other.EarlyReplacesID()); err != nil || code != 403 {
		t.Errorf("REFER naming another user's ringing call: %d %v, want 403", code, err)
	}
	if err := other.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	id := st.consult.EarlyReplacesID()
	if err := st.consult.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	<-st.carolRing.Canceled()
	if code, err := st.b1.ReferReplaces(ctx, "sip:1003@"+liveDomain, id); err != nil || code != 202 {
		t.Fatalf("REFER naming a cancelled call: %d %v, want 202", code, err)
	}
	liveReferState(t, st.b1, "SIP/2.0 481")
	liveNoReInvite(t, st.a, "the transferee")
	if err := st.b1.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	liveReInvited(t, st.a, "resumed")
	liveTalk(t, ctx, st.a, st.b1, 10)
	if err := st.b1.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	liveEnded(t, st.a, "Alice")
}
