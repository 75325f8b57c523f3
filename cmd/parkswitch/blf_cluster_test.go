package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestClusterParkLamp is SPEC §11 park lamps across the nodes of a cluster
// (SPEC §10): a BLF key on node b lights within 200 ms when a call is
// parked at its code on node a, goes dark when a phone on b retrieves the
// call and when the parked caller hangs up on a; and a lamp subscribed on
// b while the call is parked on a is lit from its first NOTIFY.
func TestClusterParkLamp(t *testing.T) {
	urls := natsCluster(t)
	a := startServerWith(t, serverSetup{nodeID: "a", natsURLs: urls, listens: sipListensAt("127.0.0.1:0")})
	b := startServerWith(t, serverSetup{nodeID: "b", natsURLs: urls, listens: sipListensAt("127.0.0.2:0")})
	waitUntil(t, 5*time.Second, "each node to see the other", func() bool {
		return a.sw.Peers()["b"] == b.udpAddr() && b.sw.Peers()["a"] == a.udpAddr()
	})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, a, "1001", "udp"), phone(t, ctx, a, "1002", "udp")
	carol := phone(t, ctx, b, "1003", "udp")

	subscribe := func(code string, busy bool) *siptest.Subscription {
		t.Helper()
		lamp, err := carol.Subscribe(ctx, code, "dialog", 600)
		if err != nil {
			t.Fatalf("SUBSCRIBE to %s on b: %v", code, err)
		}
		if n := nextLamp(t, lamp, "first NOTIFY of "+code); n.busy != busy {
			t.Fatalf("first NOTIFY of %s on b: busy %v, want %v", code, n.busy, busy)
		}
		return lamp
	}
	within := func(ch <-chan time.Duration, what string) {
		t.Helper()
		switch d := <-ch; {
		case d < 0:
			t.Errorf("lamp on b: not %s", what)
		case d > lampChange:
			t.Errorf("lamp on b: %s %v after the change on a, want within %v", what, d, lampChange)
		default:
			t.Logf("lamp on b: %s %v after the change on a", what, d)
		}
	}
	lamp10, lamp11 := subscribe("10", false), subscribe("11", false)

	// Parked on a, lit on b; a lamp subscribed now starts lit.
	ac, bc := call(t, ctx, alice, bob, "1002")
	lit := watchLamp(a, lamp10, 10, true)
	if code := parkCall(t, ctx, bob, bc, ac); code != "10" {
		t.Fatalf("parked at %s, want 10", code)
	}
	within(lit, "lit")
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	late := subscribe("10", true)

	// Retrieved from b: dark.
	dark, darkLate := watchLamp(a, lamp10, 10, false), watchLamp(a, late, 10, false)
	cc, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10 from b: %v", err)
	}
	within(dark, "dark after the retrieve")
	within(darkLate, "dark after the retrieve (late subscriber)")
	nextReInvite(t, ac, "parked party on retrieve")
	bridged(t, ctx, ac, cc)
	if err := cc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ac, "retrieved party")

	// Parked at 11 on a, and the caller hangs up there: dark on b.
	ac, bc = call(t, ctx, alice, bob, "1002")
	lit = watchLamp(a, lamp11, 11, true)
	if code := parkCall(t, ctx, bob, bc, ac); code != "11" {
		t.Fatalf("parked at %s, want 11", code)
	}
	within(lit, "lit")
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	dark = watchLamp(a, lamp11, 11, false)
	if err := ac.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	within(dark, "dark after the parked caller hung up")
	if n := b.sw.Subscriptions(); n != 3 {
		t.Errorf("b holds %d subscriptions, want 3", n)
	}
	// 10 and 11: first NOTIFY, lit, dark; the late lamp on 10: lit first, then dark.
	if n := metric(t, b, "parkswitch_subscriptions"); n != 3 {
		t.Errorf("parkswitch_subscriptions on b: %v, want 3", n)
	}
	if n := metric(t, b, `parkswitch_lamp_notifies_total{result="answered"}`); n != 8 {
		t.Errorf("NOTIFYs answered on b: %v, want 8", n)
	}
	for _, l := range []*siptest.Subscription{lamp10, lamp11, late} {
		if code, err := l.Unsubscribe(ctx); err != nil || code != 200 {
			t.Errorf("un-subscribe: %d %v", code, err)
		}
	}
	waitUntil(t, 2*time.Second, "no subscriptions on b", func() bool { return b.sw.Subscriptions() == 0 })
}
