package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
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
	hangUp(t, ctx, cc, ac, "retrieved party")

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

// TestClusterParkLampReconnect: node b loses its NATS server while a call
// parked on node a is retrieved there; once b is connected again its lamp
// goes dark (the watch is read anew after a lost connection, so a freed
// code it did not see is not left lit), and the next park lights it.
func TestClusterParkLampReconnect(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	urls := natstest.URLs(servers)
	prepareNATS(t, urls)
	a := startServerWith(t, serverSetup{nodeID: "a", natsURLs: urls[:2], listens: sipListensAt("127.0.0.1:0")})
	b := startServerWith(t, serverSetup{nodeID: "b", natsURLs: urls[2:], listens: sipListensAt("127.0.0.2:0")})
	waitUntil(t, 5*time.Second, "each node to see the other", func() bool {
		return a.sw.Peers()["b"] == b.udpAddr() && b.sw.Peers()["a"] == a.udpAddr()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, a, "1001", "udp"), phone(t, ctx, a, "1002", "udp")
	carol := phone(t, ctx, b, "1003", "udp")
	lamp, err := carol.Subscribe(ctx, "10", "dialog", 600)
	if err != nil {
		t.Fatal(err)
	}
	nextLamp(t, lamp, "first NOTIFY")

	ac, bc := call(t, ctx, alice, bob, "1002")
	lit := watchLamp(a, lamp, 10, true)
	if code := parkCall(t, ctx, bob, bc, ac); code != "10" {
		t.Fatalf("parked at %s, want 10", code)
	}
	if d := <-lit; d < 0 || d > lampChange {
		t.Fatalf("lamp on b lit after %v", d)
	}
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	servers[2].Stop() // b's server
	rc, err := bob.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10 on a: %v", err)
	}
	nextReInvite(t, ac, "parked party on retrieve")
	lost := time.Now()
	servers[2].Start()
	dark := watchLamp(a, lamp, 10, false)
	select {
	case d := <-dark:
		if d < 0 {
			t.Fatal("lamp on b still lit after b's store came back")
		}
		t.Logf("lamp on b dark %v after the retrieve during b's outage", time.Since(lost).Round(time.Millisecond))
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	hangUp(t, ctx, rc, ac, "retrieved party")

	// The watch goes on after the reconnect.
	ac, bc = call(t, ctx, alice, bob, "1002")
	lit = watchLamp(a, lamp, 10, true)
	if code := parkCallTo(t, ctx, bob, bc, ac, "sip:10@"+testDomain); code != "10" {
		t.Fatalf("parked at %s, want 10", code)
	}
	if d := <-lit; d < 0 || d > lampChange {
		t.Errorf("lamp on b lit %v after the park once reconnected, want within %v", d, lampChange)
	}
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ac.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the orbit to be freed", func() bool { return len(a.sw.Lot().Orbits()) == 0 })
	if code, err := lamp.Unsubscribe(ctx); err != nil || code != 200 {
		t.Errorf("un-subscribe: %d %v", code, err)
	}
}
