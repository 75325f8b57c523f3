package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// deskPhone is the -set arguments of the desk phone scenarios for user.
func deskPhone(user string, extra ...string) []string {
	return append([]string{"-set", "user", user, "-set", "domain", testDomain}, extra...)
}

// TestSippParkLamp drives a park lamp with SIPp as the desk phones: a BLF
// key of 1003 on code 10 (blf_subscribe.xml) checks each NOTIFY's body:
// free, then lit when 1001, another SIPp desk phone, holds its call with
// 1002 and transfers it to the park address (uac_park_transfer.xml), then
// free again once an in-process phone retrieves the call; then it
// un-subscribes.
func TestSippParkLamp(t *testing.T) {
	requireSipp(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)
	carol := phone(t, ctx, ts, "1003", "udp")

	lamp := sippUser(t, ctx, ts, "blf_subscribe.xml", "1003", "10")
	waitUntil(t, 10*time.Second, "the BLF key's subscription", func() bool { return ts.sw.Subscriptions() == 1 })
	if ts.sw.Subscriptions() != 1 {
		t.Fatalf("no subscription\n%s", sippTrace(lamp))
	}

	parker := sippUser(t, ctx, ts, "uac_park_transfer.xml", "1001", "1002", deskPhone("1001")...)
	var b *siptest.Call
	select {
	case b = <-bob.Answered():
	case <-time.After(10 * time.Second):
		t.Fatalf("the desk phone's call never reached 1002\n%s", sippTrace(parker))
	}
	parker.wait(t, "transfer to park")
	trace := sippTrace(parker)
	for _, want := range []string{"a=sendonly", "SIP/2.0 202", "Refer-To: <sip:park@contoso.com>"} {
		if !strings.Contains(trace, want) {
			t.Errorf("the desk phone's trace lacks %q", want)
		}
	}
	o, ok := ts.sw.Lot().At("DemoPark", 10)
	if !ok || o.Parker.User != "1001" || o.ParkedParty.User != "1002" {
		t.Fatalf("orbit at 10: %+v %v; want 1002 parked by 1001", o, ok)
	}
	if !b.Established() {
		t.Fatal("the parked call was dropped")
	}

	c, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10: %v", err)
	}
	talk(t, ctx, b, c, 10)
	hangUp(t, ctx, c, b, "retrieved party")
	lamp.wait(t, "BLF key")
	if n := strings.Count(sippTrace(lamp), "application/dialog-info+xml"); n < 4 {
		t.Errorf("the BLF key saw %d dialog-info NOTIFYs, want 4 (free, lit, free, terminated)", n)
	}
	waitUntil(t, 2*time.Second, "no subscriptions", func() bool { return ts.sw.Subscriptions() == 0 })
}

// TestSippParkKey is the lamp key pressed during a call (uac_park_key.xml):
// the desk phone transfers the call to the key's code, which parks it at
// exactly that code (NOTIFY sipfrag 200); pressed with the code occupied,
// the NOTIFY says 486 and the call goes on until the phone hangs up.
func TestSippParkKey(t *testing.T) {
	requireSipp(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)

	key := sippUser(t, ctx, ts, "uac_park_key.xml", "1001", "1002", deskPhone("1001", "-set", "code", "15", "-set", "expected", "200")...)
	b := <-bob.Answered()
	key.wait(t, "park at 15")
	if o, ok := ts.sw.Lot().At("DemoPark", 15); !ok || o.Parker.User != "1001" {
		t.Fatalf("orbit at 15: %+v %v; want parked by 1001 (orbits %+v)", o, ok, ts.sw.Lot().Orbits())
	}
	if !strings.Contains(sippTrace(key), "Refer-To: <sip:15@contoso.com>") {
		t.Error("the desk phone's trace lacks the REFER to 15")
	}

	busy := sippUser(t, ctx, ts, "uac_park_key.xml", "1001", "1002", deskPhone("1001", "-set", "code", "15", "-set", "expected", "486")...)
	second := <-bob.Answered()
	busy.wait(t, "park at occupied 15")
	waitDone(t, second, "the call whose park was refused, hung up by the desk phone")
	if os := ts.sw.Lot().Orbits(); len(os) != 1 || os[0].Code != 15 || !b.Established() {
		t.Fatalf("orbits %+v after the refused park; want the first call still at 15", os)
	}
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Second, "the orbit to be freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
}
