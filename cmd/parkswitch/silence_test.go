package main

import (
	"context"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// mediaTimeout is the short RTP timeout of the silence tests; the switch
// checks once a second.
const mediaTimeout = 1500 * time.Millisecond

// survives checks that neither end of a call is hung up for d.
func survives(t *testing.T, d time.Duration, what string, calls ...*siptest.Call) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, c := range calls {
			if !c.Established() {
				t.Fatalf("%s: the call was ended (%s)", what, c.EndReason())
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endedBySwitch waits for the switch to hang up both ends.
func endedBySwitch(t *testing.T, what string, calls ...*siptest.Call) {
	t.Helper()
	for _, c := range calls {
		select {
		case <-c.Done():
			if r := c.EndReason(); r != siptest.EndRemoteHangup {
				t.Errorf("%s: call ended by %s, want the switch's BYE", what, r)
			}
		case <-time.After(mediaTimeout + 3*time.Second):
			t.Fatalf("%s: the call was not ended", what)
		}
	}
}

// TestMediaTimeoutSilentCall: a bridged call on which nobody sends RTP is
// ended once the timeout has passed, and no sooner.
func TestMediaTimeoutSilentCall(t *testing.T) {
	ts := startServer(t, "", func(o *sip.Options) { o.MediaTimeout = mediaTimeout })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	start := time.Now()
	endedBySwitch(t, "silent call", a, b)
	if d := time.Since(start); d < mediaTimeout {
		t.Errorf("silent call ended after %v, before the %v timeout", d, mediaTimeout)
	}
}

// TestMediaTimeoutHoldResume: a phone held longer than the timeout, and
// silent all along, is not hung up on hold nor when it is resumed; audio
// flows after the resume, and silence after that still ends the call.
func TestMediaTimeoutHoldResume(t *testing.T) {
	ts := startServer(t, "", func(o *sip.Options) { o.MediaTimeout = mediaTimeout })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	if err := a.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	if d := b.LocalDirection(); d != "recvonly" {
		t.Fatalf("held phone answered %q, want recvonly", d)
	}
	survives(t, 2*mediaTimeout, "on hold", a, b)
	if err := a.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	// Both legs were silent for longer than the timeout before the resume:
	// the clock must start over, not end the call at the next check.
	survives(t, mediaTimeout-300*time.Millisecond, "after resume", a, b)
	talk(t, ctx, a, b, 20)
	endedBySwitch(t, "silent after resume", a, b)
}

// TestMediaTimeoutParkRetrieve: a parked phone that answers the park
// re-INVITE recvonly and stays quiet (as baresip 1.0 does), parked longer
// than the timeout, survives being retrieved and then talks both ways.
func TestMediaTimeoutParkRetrieve(t *testing.T) {
	ts := startServer(t, "", func(o *sip.Options) { o.MediaTimeout = mediaTimeout })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 10)
	code := parkCall(t, ctx, bob, b, a) // checks Alice answered recvonly
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	survives(t, 2*mediaTimeout, "parked", a)

	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v", code, err)
	}
	nextReInvite(t, a, "parked party on retrieve")
	survives(t, mediaTimeout-300*time.Millisecond, "after retrieve", a, c)
	talk(t, ctx, a, c, 20)
	hangUp(t, ctx, c, a, "parked party")
}
