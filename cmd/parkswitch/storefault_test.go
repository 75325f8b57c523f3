package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

// TestStoreLostWhileServing stops the NATS server under a running switch:
// a call in progress and a parked call go on, a new park is refused with
// 503 and a log line, and parking works again once the server is back.
func TestStoreLostWhileServing(t *testing.T) {
	nats := natstest.StartServer(t, "state")
	logs := new(syncBuffer)
	ts := startServerWith(t, serverSetup{extraYAML: "state:\n  nats_urls: [\"" + nats.URL() + "\"]\n", logTo: logs})
	t.Cleanup(nats.Stop) // before the harness checks for goroutines left
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, ts, "1001", "udp"), phone(t, ctx, ts, "1002", "udp")
	carol, dave := phone(t, ctx, ts, "1003", "udp"), phone(t, ctx, ts, "1004", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	code := parkCall(t, ctx, bob, b, a)
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	c, d := call(t, ctx, carol, dave, "1004")

	nats.Stop()
	talk(t, ctx, c, d, 20)
	rtpFlows(t, a, 10, "music with the store away")
	if st, err := c.Refer(ctx, parkURI); err != nil || st != 503 {
		t.Errorf("park with the store away: %d %v, want 503", st, err)
	}
	if !strings.Contains(logs.String(), "park refused: the state store is unavailable") {
		t.Errorf("no log line for the refused park:\n%s", tail(logs.String(), 2000))
	}
	talk(t, ctx, c, d, 20) // the refused park left the call as it was

	nats.Start()
	waitUntil(t, 15*time.Second, "parking to work again", func() bool {
		st, err := c.Refer(ctx, parkURI)
		return err == nil && st == 202
	})
	nextReInvite(t, d, "parked party once the store is back")
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := bob.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v", code, err)
	}
	nextReInvite(t, a, "retrieve")
	talk(t, ctx, a, r, 10)
	for _, x := range []*siptest.Call{r, d} {
		if err := x.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitDone(t, a, "retrieved party")
	waitUntil(t, 5*time.Second, "orbits to be freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
	waitUntil(t, 5*time.Second, "the shared table to be empty", func() bool {
		list, err := ts.state.ListOrbits(ctx, "")
		return err == nil && len(list) == 0
	})
}

// TestBinaryStoreUnreachable: a switch whose state store cannot be reached
// at start says so and exits 1.
func TestBinaryStoreUnreachable(t *testing.T) {
	dir := t.TempDir()
	port := freeUDPPort(t) // nothing listens on TCP there
	cfg := "server:\n  domain: contoso.com\n  sip_listen: [\"udp://127.0.0.1:" + strconv.Itoa(freeUDPPort(t)) + "\"]\n" +
		"  http_listen: \"127.0.0.1:" + strconv.Itoa(freeUDPPort(t)) + "\"\n" +
		"state:\n  nats_urls: [\"nats://user:hunter2@127.0.0.1:" + strconv.Itoa(port) + "\"]\n"
	path := filepath.Join(dir, "parkswitch.yaml")
	writeFile(t, path, cfg)
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, buildBinary(t), "serve", "--config", path).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "state store") || !strings.Contains(string(out), "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("the error does not say which store:\n%s", out)
	}
	if strings.Contains(string(out), "hunter2") {
		t.Errorf("the error shows the NATS password:\n%s", out)
	}
}
