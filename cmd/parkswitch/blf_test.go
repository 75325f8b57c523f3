package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// lampChange is the most a park lamp may lag its orbit (SPEC §11).
const lampChange = 200 * time.Millisecond

var versionAttr = regexp.MustCompile(`<dialog-info [^>]*version="(\d+)"`)

// lampNotify is one NOTIFY of a park lamp, read.
type lampNotify struct {
	at      time.Time
	busy    bool // a confirmed dialog
	version int
	state   string // Subscription-State
}

// nextLamp waits for the next NOTIFY of sub and checks what every one
// carries (RFC 4235, RFC 6665).
func nextLamp(t *testing.T, sub *siptest.Subscription, what string) lampNotify {
	t.Helper()
	var n *sip.Request
	select {
	case n = <-sub.Notifies():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no NOTIFY", what)
	}
	got := lampNotify{at: time.Now()}
	if ev := n.GetHeader("Event"); ev == nil || ev.Value() != "dialog" {
		t.Errorf("%s: Event %v", what, ev)
	}
	if ct := n.ContentType(); ct == nil || ct.Value() != "application/dialog-info+xml" {
		t.Errorf("%s: Content-Type %v", what, ct)
	}
	if ss := n.GetHeader("Subscription-State"); ss != nil {
		got.state = ss.Value()
	}
	body := string(n.Body())
	m := versionAttr.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, `state="full"`) || !strings.Contains(body, `entity="sip:`) {
		t.Fatalf("%s: body\n%s", what, body)
	}
	got.version, _ = strconv.Atoi(m[1])
	got.busy = strings.Contains(body, "<state>confirmed</state>")
	return got
}

// watchLamp reports how long after the orbit at code changed to busy the
// lamp showed it, running while the test parks or retrieves.
func watchLamp(ts *testServer, sub *siptest.Subscription, code int, busy bool) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		var changed time.Time
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case n := <-sub.Notifies():
				if b := strings.Contains(string(n.Body()), "<state>confirmed</state>"); b == busy {
					if changed.IsZero() {
						changed = time.Now() // NOTIFY first: the poll had not seen it yet
					}
					out <- time.Since(changed)
					return
				}
			case <-tick.C:
				if _, ok := ts.sw.Lot().At("DemoPark", code); ok == busy && changed.IsZero() {
					changed = time.Now()
				}
			case <-deadline:
				out <- -1
				return
			}
		}
	}()
	return out
}

// TestParkLamp is a BLF key on code 10: dark, lit while a call is parked
// there, dark again after the retrieve; refreshed, un-subscribed, expired;
// and the refusals.
func TestParkLamp(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) {
		o.SubscribeMinExpires = 2
		o.MaxSubscriptionsPerUser = 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")

	lamp, err := carol.Subscribe(ctx, "10", "dialog", 120)
	if err != nil {
		t.Fatalf("SUBSCRIBE to 10: %v", err)
	}
	res := lamp.Response()
	if e := res.GetHeader("Expires"); e == nil || e.Value() != "120" || res.Contact() == nil {
		t.Errorf("200 to SUBSCRIBE: Expires %v, Contact %v", e, res.Contact())
	}
	n := nextLamp(t, lamp, "first NOTIFY")
	if n.busy || n.version != 0 || !strings.HasPrefix(n.state, "active;expires=") {
		t.Errorf("first NOTIFY: %+v, want idle, version 0, active", n)
	}
	version := n.version

	a, b := call(t, ctx, alice, bob, "1002")
	lit := watchLamp(ts, lamp, 10, true)
	if code := parkCall(t, ctx, bob, b, a); code != "10" {
		t.Fatalf("parked at %s, want 10", code)
	}
	if d := <-lit; d < 0 {
		t.Error("lamp not lit after the park")
	} else if d > lampChange {
		t.Errorf("lamp lit %v after the park, want within %v", d, lampChange)
	} else {
		t.Logf("lamp lit %v after the park", d)
	}
	version++
	b.Hangup(ctx)

	dark := watchLamp(ts, lamp, 10, false)
	c, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10: %v", err)
	}
	if d := <-dark; d < 0 {
		t.Error("lamp not dark after the retrieve")
	} else if d > lampChange {
		t.Errorf("lamp went dark %v after the retrieve, want within %v", d, lampChange)
	} else {
		t.Logf("lamp dark %v after the retrieve", d)
	}
	version++
	talk(t, ctx, a, c, 10)
	c.Hangup(ctx)
	waitDone(t, a, "retrieved party")

	if code, err := lamp.Refresh(ctx, 60); err != nil || code != 200 {
		t.Fatalf("refresh: %d %v", code, err)
	}
	if e := lamp.Response().GetHeader("Expires"); e == nil || e.Value() != "60" {
		t.Errorf("refresh granted Expires %v, want 60", e)
	}
	n = nextLamp(t, lamp, "NOTIFY after the refresh")
	if n.busy || n.version != version+1 || !strings.HasPrefix(n.state, "active") {
		t.Errorf("NOTIFY after the refresh: %+v, want idle, version %d, active", n, version+1)
	}
	if code, err := lamp.Unsubscribe(ctx); err != nil || code != 200 {
		t.Fatalf("un-subscribe: %d %v", code, err)
	}
	n = nextLamp(t, lamp, "NOTIFY after un-subscribing")
	if !strings.HasPrefix(n.state, "terminated") {
		t.Errorf("Subscription-State %q after un-subscribing, want terminated", n.state)
	}
	if code, _ := lamp.Refresh(ctx, 60); code != 481 {
		t.Errorf("refresh after un-subscribing: %d, want 481", code)
	}

	t.Run("expiry ends the subscription", func(t *testing.T) {
		short, err := bob.Subscribe(ctx, "11", "dialog", 2)
		if err != nil {
			t.Fatal(err)
		}
		nextLamp(t, short, "first NOTIFY")
		n := nextLamp(t, short, "NOTIFY at expiry")
		if n.state != "terminated;reason=timeout" {
			t.Errorf("Subscription-State %q at expiry", n.state)
		}
		waitUntil(t, time.Second, "no subscriptions", func() bool { return ts.sw.Subscriptions() == 0 })
	})
	t.Run("refusals", func(t *testing.T) {
		dave := phone(t, ctx, ts, "1004", "udp") // Global: no park
		erin := phone(t, ctx, ts, "1005", "udp") // SalesPolicy 500–501
		for _, tt := range []struct {
			name  string
			p     *siptest.Phone
			code  string
			event string
			exp   int
			want  int
		}{
			{"another policy's code", erin, "10", "dialog", 60, 403},
			{"park not allowed", dave, "10", "dialog", 60, 403},
			{"outside the range", bob, "500", "dialog", 60, 403},
			{"a user, not a code", bob, "1003", "dialog", 60, 404},
			{"the park address: no list of every code (RFC 4662)", bob, "park", "dialog", 60, 404},
			{"another event package", bob, "10", "presence", 60, 489},
			{"too brief", bob, "10", "dialog", 1, 423},
		} {
			_, err := tt.p.Subscribe(ctx, tt.code, tt.event, tt.exp)
			if got := siptest.StatusCode(err); got != tt.want {
				t.Errorf("%s: %v, want %d", tt.name, err, tt.want)
			}
		}
		// Two per user here: a third is refused, and the first two stay
		// until shutdown ends them.
		for _, code := range []string{"500", "501"} {
			s, err := erin.Subscribe(ctx, code, "dialog", 60)
			if err != nil {
				t.Fatalf("SUBSCRIBE to %s: %v", code, err)
			}
			nextLamp(t, s, "first NOTIFY")
		}
		if _, err := erin.Subscribe(ctx, "500", "dialog", 60); siptest.StatusCode(err) != 503 {
			t.Errorf("third subscription of a user: %v, want 503", err)
		}
	})
}
