package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	sw "github.com/parkswitch/parkswitch/sip"
)

// TestClusterPark is SPEC §10 "Cluster" for park: a call parked on node A
// is retrieved by a phone registered on node B with two-way audio, the
// parked party's media staying on A; and a parked call rings back once,
// from the node holding it.
func TestClusterPark(t *testing.T) {
	urls := natsCluster(t)
	fast := func(o *sw.Options) {
		o.ParkClock = scaledClock{factor: 100} // DemoPark's 300 s in 3 s
		o.Park.Ringback = 3 * time.Second
	}
	a := startServerWith(t, serverSetup{nodeID: "a", natsURLs: urls, listens: sipListensAt("127.0.0.1:0"), tune: fast})
	b := startServerWith(t, serverSetup{nodeID: "b", natsURLs: urls, listens: sipListensAt("127.0.0.2:0"), tune: fast})
	waitUntil(t, 5*time.Second, "each node to see the other", func() bool {
		return a.sw.Peers()["b"] == b.udpAddr() && b.sw.Peers()["a"] == a.udpAddr()
	})
	t.Cleanup(http.DefaultClient.CloseIdleConnections) // the API reads' connections
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, a, "1001", "udp"), phone(t, ctx, a, "1002", "udp")
	carol := phone(t, ctx, b, "1003", "udp")

	t.Run("parked on a, retrieved from b", func(t *testing.T) {
		ac, bc := call(t, ctx, alice, bob, "1002")
		code := parkCall(t, ctx, bob, bc, ac)
		if err := bc.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		if os := getOrbitsAt(t, b); len(os) != 1 || os[0].Node != "a" {
			t.Errorf("node b lists %+v, want the orbit on a", os)
		}
		cc, err := carol.Dial(ctx, code)
		if err != nil {
			t.Fatalf("retrieve %s from b: %v", code, err)
		}
		nextReInvite(t, ac, "parked party on retrieve")
		bridged(t, ctx, ac, cc)
		// Alice still hears node A's relay, Carol node B's.
		talkVia(t, ctx, ac, cc, 50, "127.0.0.1", "127.0.0.2")
		hangUp(t, ctx, cc, ac, "retrieved party")
	})

	t.Run("one ringback", func(t *testing.T) {
		ac, bc := call(t, ctx, alice, bob, "1002")
		code := parkCall(t, ctx, bob, bc, ac)
		if err := bc.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		var rings int
		deadline := time.After(5500 * time.Millisecond) // the 3 s timeout and most of the 3 s ring
	wait:
		for {
			select {
			case in := <-bob.Incoming():
				rings++
				if in.FromDisplay != "Parked "+code {
					t.Errorf("ringback shows %q", in.FromDisplay)
				}
			case <-deadline:
				break wait
			}
		}
		if rings != 1 {
			t.Fatalf("the parker's phone rang %d times in one cycle, want once", rings)
		}
		if n := len(b.sw.Lot().Orbits()); n != 0 {
			t.Errorf("node b holds %d orbits", n)
		}
		// Nobody answers; the parked party hangs up.
		if err := ac.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "the orbit to be freed", func() bool { return len(getOrbitsAt(t, a)) == 0 })
	})
}

// getOrbitsAt lists the orbits node ts's API shows.
func getOrbitsAt(t *testing.T, ts *testServer) []orbitJSON {
	t.Helper()
	var out []orbitJSON
	getJSON(t, "http://"+ts.httpAddr()+"/api/v1/orbits", &out)
	return out
}

type orbitJSON struct {
	Code int    `json:"code"`
	Node string `json:"node"`
}
