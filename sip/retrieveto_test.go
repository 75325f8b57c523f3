package sip

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// liveParked has 1001 call 1002 and 1002 park it; it returns Alice's call,
// now parked, and its code. Bob's leg is hung up.
func liveParked(t *testing.T, ctx context.Context, s *live, alice, bob *siptest.Phone) (*siptest.Call, int) {
	t.Helper()
	a, b := liveCall(t, ctx, alice, bob, "1002")
	if st, err := b.Refer(ctx, "sip:park@"+liveDomain); err != nil || st != 202 {
		t.Fatalf("REFER to park: %d %v", st, err)
	}
	liveReInvited(t, a, "parked party")
	liveHears(t, a, 10, "music at the parked party")
	code, err := strconv.Atoi(liveParkedCode(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Hangup(ctx); err != nil {
		t.Fatalf("parker hangs up: %v", err)
	}
	return a, code
}

// liveRinging waits for the next call to p and checks that it shows the
// parked party with "Parked <code>".
func liveRinging(t *testing.T, ctx context.Context, p *siptest.Phone, code int) *siptest.Incoming {
	t.Helper()
	select {
	case in := <-p.Incoming():
		if in.FromUser != "1001" || in.FromDisplay != "Parked "+strconv.Itoa(code) {
			t.Errorf("rung by %q <%s>, want \"Parked %d\" <1001>", in.FromDisplay, in.FromUser, code)
		}
		return in
	case <-ctx.Done():
		t.Fatal("the phone was not rung")
	}
	return nil
}

// liveCanceled waits for in to be CANCELled by the switch.
func liveCanceled(t *testing.T, in *siptest.Incoming, what string) {
	t.Helper()
	select {
	case <-in.Canceled():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the ringing phone was not CANCELled", what)
	}
}

// TestRetrieveTo: the switch rings the chosen user with the parked party
// and bridges the phone that answers; whatever claims the orbit first
// (a retrieve by code, the parked party hanging up) stops the ringing,
// and an unanswered ring leaves the call parked.
func TestRetrieveTo(t *testing.T) {
	tests := []struct {
		name string
		ring time.Duration
		// then acts while Carol's phone rings for Alice's call at code.
		then func(t *testing.T, ctx context.Context, s *live, a *siptest.Call, in *siptest.Incoming, bob *siptest.Phone, code int)
	}{
		{"answered", 10 * time.Second, func(t *testing.T, ctx context.Context, s *live, a *siptest.Call, in *siptest.Incoming, _ *siptest.Phone, code int) {
			c, err := in.Answer(ctx)
			if err != nil {
				t.Fatalf("answer: %v", err)
			}
			liveReInvited(t, a, "parked party, picked up")
			liveTalk(t, ctx, a, c, 30)
			if os := s.Lot().Orbits(); len(os) != 0 {
				t.Errorf("orbits after the pickup: %+v", os)
			}
			if err := c.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveEnded(t, a, "parked party after the pickup")
		}},
		{"retrieved by code while ringing", 10 * time.Second, func(t *testing.T, ctx context.Context, s *live, a *siptest.Call, in *siptest.Incoming, bob *siptest.Phone, code int) {
			r, err := bob.Dial(ctx, strconv.Itoa(code))
			if err != nil {
				t.Fatalf("retrieve %d: %v", code, err)
			}
			liveCanceled(t, in, "retrieved by code")
			liveReInvited(t, a, "parked party, retrieved")
			liveTalk(t, ctx, a, r, 30)
			if err := r.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveEnded(t, a, "retrieved party")
		}},
		{"parked party hangs up while ringing", 10 * time.Second, func(t *testing.T, ctx context.Context, s *live, a *siptest.Call, in *siptest.Incoming, _ *siptest.Phone, code int) {
			if err := a.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveCanceled(t, in, "parked party gone")
		}},
		{"not answered", time.Second, func(t *testing.T, ctx context.Context, s *live, a *siptest.Call, in *siptest.Incoming, bob *siptest.Phone, code int) {
			liveCanceled(t, in, "ring time over")
			if o := s.Lot().Lookup("DemoPark", code); o == nil || o.State() != park.StateParked {
				t.Fatalf("after an unanswered ring the orbit is %v, want still parked", o)
			}
			liveHears(t, a, 10, "music after the unanswered ring")
			r, err := bob.Dial(ctx, strconv.Itoa(code))
			if err != nil {
				t.Fatalf("retrieve %d after the unanswered ring: %v", code, err)
			}
			liveReInvited(t, a, "parked party, retrieved")
			liveTalk(t, ctx, a, r, 30)
			if err := a.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			liveEnded(t, r, "retriever")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startLive(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")
			a, code := liveParked(t, ctx, s, alice, bob)
			u, err := s.RetrieveTo(ctx, "demopark", code, "1003", tt.ring)
			if err != nil || u.Name != "1003" {
				t.Fatalf("RetrieveTo 1003 = %v, %v", u.Name, err)
			}
			in := liveRinging(t, ctx, carol, code)
			tt.then(t, ctx, s, a, in, bob, code)
			liveSettled(t, "the ring to be forgotten", func() bool {
				s.retrieveTo.mu.Lock()
				defer s.retrieveTo.mu.Unlock()
				return len(s.retrieveTo.ringing) == 0
			})
		})
	}
}

// TestRetrieveToRefused: a code with no call, a user that does not exist
// or has no phone, and a second ring of a call already ringing are
// refused, and the parked call stays as it was.
func TestRetrieveToRefused(t *testing.T) {
	s := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")
	a, code := liveParked(t, ctx, s, alice, bob)
	for _, tt := range []struct {
		policy string
		code   int
		user   string
		want   error
	}{
		{"DemoPark", code + 1, "1003", ErrNotParkedHere},
		{"Global", code, "1003", ErrNotParkedHere},
		{"DemoPark", code, "9999", ErrUnknownUser},
		{"DemoPark", code, "1004", ErrNoPhone}, // not registered
	} {
		if _, err := s.RetrieveTo(ctx, tt.policy, tt.code, tt.user, 5*time.Second); !errors.Is(err, tt.want) {
			t.Errorf("RetrieveTo(%s, %d, %s) = %v, want %v", tt.policy, tt.code, tt.user, err, tt.want)
		}
	}
	if _, err := s.RetrieveTo(ctx, "DemoPark", code, "1003@"+liveDomain, 5*time.Second); err != nil {
		t.Fatalf("RetrieveTo by user id: %v", err)
	}
	in := liveRinging(t, ctx, carol, code)
	if _, err := s.RetrieveTo(ctx, "DemoPark", code, "1002", 5*time.Second); !errors.Is(err, ErrRingingTo) {
		t.Errorf("a second RetrieveTo while ringing = %v, want %v", err, ErrRingingTo)
	}
	select {
	case in2 := <-bob.Incoming():
		t.Errorf("the refused RetrieveTo rang 1002 (%s)", in2.CallID)
	case <-time.After(300 * time.Millisecond):
	}
	if err := in.Reject(486); err != nil {
		t.Fatal(err)
	}
	liveSettled(t, "the rejected ring to end", func() bool {
		s.retrieveTo.mu.Lock()
		defer s.retrieveTo.mu.Unlock()
		return len(s.retrieveTo.ringing) == 0
	})
	if o := s.Lot().Lookup("DemoPark", code); o == nil || o.State() != park.StateParked {
		t.Fatalf("after the refusals and a rejected ring the orbit is %v, want still parked", o)
	}
	liveHears(t, a, 10, "music after the refusals")
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
}
