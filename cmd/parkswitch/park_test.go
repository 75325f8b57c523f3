package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/park"
	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

const parkURI = "sip:park@" + testDomain

// nextReInvite waits for the switch to re-INVITE c and returns its offer.
func nextReInvite(t *testing.T, c *siptest.Call, what string) *sip.Request {
	t.Helper()
	select {
	case r := <-c.ReInvites():
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no re-INVITE", what)
	}
	return nil
}

// rtpFlows waits until c has received n more RTP packets.
func rtpFlows(t *testing.T, c *siptest.Call, n uint64, what string) {
	t.Helper()
	start := c.RTPReceived()
	waitUntil(t, 5*time.Second, what, func() bool { return c.RTPReceived()-start >= n })
}

// parkCall has parker REFER its call to the park address and checks the
// SPEC §4 sequence: 202, the parked party re-INVITEd sendonly and hearing
// music, NOTIFY sipfrag 200, and a MESSAGE with the code to the parker.
func parkCall(t *testing.T, ctx context.Context, parkerPhone *siptest.Phone, parker, parked *siptest.Call) string {
	t.Helper()
	return parkCallTo(t, ctx, parkerPhone, parker, parked, parkURI)
}

// parkCallTo is parkCall with the REFER to target (a directed park).
func parkCallTo(t *testing.T, ctx context.Context, parkerPhone *siptest.Phone, parker, parked *siptest.Call, target string) string {
	t.Helper()
	code, err := parker.Refer(ctx, target)
	if err != nil || code != 202 {
		t.Fatalf("REFER to park: %d %v", code, err)
	}
	offer := nextReInvite(t, parked, "parked party")
	if d := siptest.SDPDirection(offer.Body()); d != "sendonly" {
		t.Errorf("parked party offered %q, want sendonly", d)
	}
	if d := parked.LocalDirection(); d != "recvonly" {
		t.Errorf("parked party answered %q, want recvonly", d)
	}
	rtpFlows(t, parked, 10, "music on hold at the parked party")
	select {
	case n := <-parker.Notifies():
		if ev := n.GetHeader("Event"); ev == nil || !strings.HasPrefix(ev.Value(), "refer") {
			t.Errorf("NOTIFY event %v", ev)
		}
		if ct := n.ContentType(); ct == nil || !strings.HasPrefix(ct.Value(), "message/sipfrag") {
			t.Errorf("NOTIFY content type %v", ct)
		}
		if ss := n.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), "terminated") {
			t.Errorf("NOTIFY subscription state %v", ss)
		}
		if !strings.HasPrefix(string(n.Body()), "SIP/2.0 200") {
			t.Errorf("NOTIFY body %q", n.Body())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY to the parker")
	}
	select {
	case m := <-parkerPhone.Messages():
		body := string(m.Body())
		i := strings.Index(body, "parked at ")
		if i < 0 {
			t.Fatalf("MESSAGE to the parker says %q", body)
		}
		return strings.TrimSpace(body[i+len("parked at "):])
	case <-time.After(5 * time.Second):
		t.Fatal("no MESSAGE with the park code")
	}
	return ""
}

// TestParkAndRetrieve is the receptionist scenario: Alice (1001) calls
// Bob (1002), Bob parks her, Carol (1003) dials the code and talks to her.
func TestParkAndRetrieve(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")

	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 10)
	code := parkCall(t, ctx, bob, b, a)
	if code != "10" {
		t.Errorf("first park in DemoPark got code %s, want 10 (pickup_range_start)", code)
	}
	// Bob hangs up his leg; Alice stays parked.
	if err := b.Hangup(ctx); err != nil {
		t.Fatalf("parker hangup: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if !a.Established() {
		t.Fatal("the parked call was dropped when the parker hung up")
	}
	orbits := ts.sw.Lot().Orbits()
	if len(orbits) != 1 || orbits[0].Code != 10 || orbits[0].Policy != "DemoPark" ||
		orbits[0].Parker.User != "1002" || orbits[0].ParkedParty.User != "1001" || orbits[0].State != park.StateParked {
		t.Fatalf("orbits = %+v", orbits)
	}

	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v", code, err)
	}
	offer := nextReInvite(t, a, "parked party on retrieve")
	if d := siptest.SDPDirection(offer.Body()); d != "sendrecv" && d != "" {
		t.Errorf("retrieve re-INVITE offered %q, want sendrecv", d)
	}
	talk(t, ctx, a, c, 30)
	if n := len(ts.sw.Lot().Orbits()); n != 0 {
		t.Errorf("%d orbits left after the retrieve", n)
	}
	hangUp(t, ctx, c, a, "retrieved party")
}

// TestParkRefusals: each refusal leaves the call as it was.
func TestParkRefusals(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	dave := phone(t, ctx, ts, "1004", "udp") // Global: no park
	erin := phone(t, ctx, ts, "1005", "udp") // SalesPolicy 500–501
	frank := phone(t, ctx, ts, "1006", "udp")

	t.Run("parker's policy forbids park: 403", func(t *testing.T) {
		a, d := call(t, ctx, alice, dave, "1004")
		if code, _ := d.Refer(ctx, parkURI); code != 403 {
			t.Errorf("REFER by a Global user: %d, want 403", code)
		}
		talk(t, ctx, a, d, 10) // untouched
		a.Hangup(ctx)
		waitDone(t, d, "callee")
	})
	t.Run("retriever's policy forbids park: 403", func(t *testing.T) {
		if _, err := dave.Dial(ctx, "10"); siptest.StatusCode(err) != 403 {
			t.Errorf("retrieve by a Global user: %v, want 403", err)
		}
	})
	t.Run("no such orbit: 404", func(t *testing.T) {
		if _, err := bob.Dial(ctx, "42"); siptest.StatusCode(err) != 404 {
			t.Errorf("retrieve of an empty code: %v, want 404", err)
		}
	})
	t.Run("range full: 503, then codes wrap", func(t *testing.T) {
		var parked []*siptest.Call
		for i, want := range []string{"500", "501"} {
			a, e := call(t, ctx, alice, erin, "1005")
			if got := parkCall(t, ctx, erin, e, a); got != want {
				t.Errorf("park %d got code %s, want %s", i, got, want)
			}
			e.Hangup(ctx)
			parked = append(parked, a)
		}
		a, e := call(t, ctx, alice, erin, "1005")
		if code, _ := e.Refer(ctx, parkURI); code != 503 {
			t.Errorf("REFER with every code taken: %d, want 503", code)
		}
		talk(t, ctx, a, e, 10)

		// Another policy's user cannot reach Sales orbits; a Sales user can.
		if _, err := bob.Dial(ctx, "500"); siptest.StatusCode(err) != 404 {
			t.Errorf("DemoPark user retrieving a SalesPolicy orbit: %v, want 404", err)
		}
		f, err := frank.Dial(ctx, "500")
		if err != nil {
			t.Fatalf("SalesPolicy user retrieving 500: %v", err)
		}
		nextReInvite(t, parked[0], "retrieved party")
		talk(t, ctx, parked[0], f, 10)
		f.Hangup(ctx)
		// 500 is free again, but allocation moves on: 501 is taken, so
		// the next park wraps to 500.
		if got := parkCall(t, ctx, erin, e, a); got != "500" {
			t.Errorf("park after a free got %s, want 500", got)
		}
		e.Hangup(ctx)
		// The parked parties hang up: their orbits go at once.
		parked[1].Hangup(ctx)
		a.Hangup(ctx)
		waitUntil(t, 3*time.Second, "orbits to be freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
	})
}

// TestRetrieveRace: two phones dial the same code at once; exactly one
// gets the call, the other 404.
func TestRetrieveRace(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	code := parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)

	var wg sync.WaitGroup
	results := make([]error, 2)
	calls := make([]*siptest.Call, 2)
	for i, p := range []*siptest.Phone{bob, carol} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls[i], results[i] = p.Dial(ctx, code)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range results {
		switch {
		case err == nil:
			won++
			calls[i].Hangup(ctx)
		case siptest.StatusCode(err) != 404:
			t.Errorf("loser got %v, want 404", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d phones got the parked call, want exactly 1", won)
	}
	waitDone(t, a, "retrieved party")
}

// scaledClock runs park timers faster than real time.
type scaledClock struct{ factor time.Duration }

func (c scaledClock) Now() time.Time { return time.Now() }
func (c scaledClock) AfterFunc(d time.Duration, f func()) park.Timer {
	return time.AfterFunc(d/c.factor, f)
}

// TestRingback: nobody retrieves; after the policy's timeout (300 s, run
// 100 times faster) the parker's phone rings as "Parked <code>" and
// answering it connects the parker to the parked party.
func TestRingback(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) {
		o.ParkClock = scaledClock{factor: 100}
		o.Park.Ringback = 3 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	code := parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)

	select {
	case in := <-bob.Incoming():
		if in.FromDisplay != "Parked "+code {
			t.Errorf("ringback shows %q, want %q", in.FromDisplay, "Parked "+code)
		}
		if in.FromUser != "1001" {
			t.Errorf("ringback caller ID %q, want the parked party 1001", in.FromUser)
		}
		rb, err := in.Answer(ctx)
		if err != nil {
			t.Fatalf("answer ringback: %v", err)
		}
		nextReInvite(t, a, "parked party on ringback answer")
		bridged(t, ctx, a, rb)
		talk(t, ctx, a, rb, 20)
		if n := len(ts.sw.Lot().Orbits()); n != 0 {
			t.Errorf("%d orbits left after the ringback was answered", n)
		}
		rb.Hangup(ctx)
		waitDone(t, a, "parked party")
	case <-time.After(10 * time.Second):
		t.Fatal("no ringback after the park timeout")
	}
}

// TestRingbackUnanswered: after max_ringbacks unanswered cycles the parked
// party is disconnected and the orbit is gone.
func TestRingbackUnanswered(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) {
		o.ParkClock = scaledClock{factor: 100}
		o.Park.Ringback = time.Second
		o.Park.MaxRingbacks = 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)

	rings := 0
	deadline := time.After(20 * time.Second)
	for {
		select {
		case in := <-bob.Incoming():
			rings++
			select {
			case <-in.Canceled():
			case <-time.After(5 * time.Second):
				t.Fatal("unanswered ringback was not cancelled")
			}
		case <-a.Done():
			if rings != 2 {
				t.Errorf("parker rang %d times, want max_ringbacks = 2", rings)
			}
			if n := len(ts.sw.Lot().Orbits()); n != 0 {
				t.Errorf("%d orbits left after abandon", n)
			}
			return
		case <-deadline:
			t.Fatalf("parked party still connected after %d ringbacks", rings)
		}
	}
}

// TestParkedPhoneReInvites: a parked phone that re-INVITEs (a session
// refresh, or holding the call itself) is answered by the switch and keeps
// hearing music.
func TestParkedPhoneReInvites(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)
	if err := a.ReInvite(ctx, "sendrecv"); err != nil {
		t.Fatalf("parked phone's re-INVITE: %v", err)
	}
	if d := siptest.SDPDirection(a.LastAnswerSDP()); d != "sendonly" {
		t.Errorf("switch answered a parked phone %q, want sendonly (music)", d)
	}
	rtpFlows(t, a, 10, "music after the parked phone's re-INVITE")
	a.Hangup(ctx)
	waitUntil(t, 3*time.Second, "orbit freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
}

// TestParkAfterHold: desk phones often hold the call (sendonly re-INVITE)
// before they transfer it to park; the parked party still ends up on music
// and is retrievable.
func TestParkAfterHold(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "tcp")
	carol := phone(t, ctx, ts, "1003", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	if err := b.Hold(ctx); err != nil {
		t.Fatalf("hold before park: %v", err)
	}
	nextReInvite(t, a, "held party") // the hold, passed through
	code := parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)
	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve after hold+park: %v", err)
	}
	nextReInvite(t, a, "retrieved party")
	talk(t, ctx, a, c, 20)
	c.Hangup(ctx)
	waitDone(t, a, "retrieved party")
}

// TestParkerLegReleased: a parker's phone that does not hang up after the
// park gets a BYE from the switch (30 s by default, shortened here); the
// parked call stays.
func TestParkerLegReleased(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) { o.ReleaseTimeout = 500 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	parkCall(t, ctx, bob, b, a)
	waitDone(t, b, "parker's leg")
	if !a.Established() || len(ts.sw.Lot().Orbits()) != 1 {
		t.Fatal("releasing the parker's leg disturbed the parked call")
	}
	a.Hangup(ctx)
	waitUntil(t, 3*time.Second, "orbit freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
}
