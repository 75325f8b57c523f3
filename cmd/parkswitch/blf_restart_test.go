package main

import (
	"context"
	"testing"
	"time"
)

// TestBinaryRestartParkLamp: the real binary is killed with a call parked
// at 10 and started again on the same state; a BLF key subscribing right
// after the restart is lit from its first NOTIFY, and goes dark when the
// call is retrieved.
func TestBinaryRestartParkLamp(t *testing.T) {
	dir := t.TempDir()
	cfg, sipAddr, api := restartConfig(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	first, _ := serveBinary(t, ctx, cfg, api)
	alice, bob := phoneAt(t, ctx, sipAddr, "1001", "udp"), phoneAt(t, ctx, sipAddr, "1002", "udp")
	carol := phoneAt(t, ctx, sipAddr, "1003", "udp")
	ac, bc := call(t, ctx, alice, bob, "1002")
	if code := parkCall(t, ctx, bob, bc, ac); code != "10" {
		t.Fatalf("parked at %s, want 10", code)
	}
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the dialog snapshot is written behind
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	serveBinary(t, ctx, cfg, api)
	lamp, err := carol.Subscribe(ctx, "10", "dialog", 600)
	if err != nil {
		t.Fatalf("SUBSCRIBE after the restart: %v", err)
	}
	if n := nextLamp(t, lamp, "first NOTIFY after the restart"); !n.busy {
		t.Fatal("lamp dark after the restart with a call parked at 10")
	}
	nextReInvite(t, ac, "parked party after the restart")
	c, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10 after the restart: %v", err)
	}
	retrieved := time.Now()
	if n := nextLamp(t, lamp, "NOTIFY after the retrieve"); n.busy {
		t.Error("lamp still lit after the retrieve")
	} else if d := n.at.Sub(retrieved); d > lampChange {
		t.Errorf("lamp dark %v after the retrieve's 200, want within %v", d, lampChange)
	}
	nextReInvite(t, ac, "parked party on retrieve")
	talk(t, ctx, ac, c, 10)
	hangUp(t, ctx, c, ac, "retrieved party")
	if code, err := lamp.Unsubscribe(ctx); err != nil || code != 200 {
		t.Errorf("un-subscribe: %d %v", code, err)
	}
	waitUntil(t, 5*time.Second, "orbits to be freed", func() bool { return len(getOrbits(t, api)) == 0 })
}
