package sip

import (
	"context"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestCancelWhileRelayingRinging: a caller's CANCEL that lands while the
// switch relays the callee's provisional responses ends the call (487 to
// the caller, CANCEL to the callee). sipgo runs the CANCEL callback under
// the INVITE transaction's lock, which relaying a provisional also takes;
// taking the ringing's lock inside that callback deadlocked the call.
func TestCancelWhileRelayingRinging(t *testing.T) {
	s := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002")
	for i := range 30 {
		ringing, err := alice.DialAsync(ctx, "1002")
		if err != nil {
			t.Fatal(err)
		}
		var in *siptest.Incoming
		select {
		case in = <-bob.Incoming():
		case <-ctx.Done():
			t.Fatal("bob's phone did not ring")
		}
		rang := make(chan struct{})
		go func() { // a burst of 180s, over when the CANCEL lands or soon after
			defer close(rang)
			for range 300 {
				if in.Ring() != nil {
					return
				}
			}
		}()
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err = ringing.Cancel(cctx)
		ccancel()
		if err != nil {
			t.Fatalf("call %d: CANCEL while ringing: %v", i, err)
		}
		select {
		case <-in.Canceled():
		case <-time.After(5 * time.Second):
			t.Fatalf("call %d: the switch did not cancel its INVITE to bob", i)
		}
		<-rang
	}
}
