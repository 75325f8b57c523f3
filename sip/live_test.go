package sip

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/parkswitch/parkswitch/configs"
	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// This file runs a switch on loopback with in-process phones, for the
// tests of this package that need calls on the wire.

const liveDomain = "contoso.com"

// livePolicies grants park to everyone but 1004.
const livePolicies = `
policies:
  - identity: Global
  - identity: DemoPark
    allow_call_park: true
assignments:
  groups:
    - group: staff
      policy: DemoPark
      rank: 1
`

// livePorts hands each live switch its own RTP ports, away from those of
// the binary's tests (16000 and up) and the kernel's ephemeral range.
var livePorts = struct {
	sync.Mutex
	next int
}{next: 12000}

// live is a started switch and its media ports.
type live struct {
	*Switch
	ports *media.PortPool
}

// startLive starts a switch on 127.0.0.1 with users 1001–1004 (passwords
// demo<user>; all but 1004 may park) and the built-in music on hold. When
// the test ends it checks that no call, dialog or RTP port is left, shuts
// down, and checks that no goroutine is.
func startLive(t *testing.T, tune func(*Options)) *live {
	t.Helper()
	before := goleak.IgnoreCurrent()
	livePorts.Lock()
	lo := livePorts.next
	livePorts.next += 100
	if livePorts.next >= 15900 {
		livePorts.next = 12000
	}
	livePorts.Unlock()
	ports, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), lo, lo+99)
	if err != nil {
		t.Fatal(err)
	}
	pols, err := policy.Parse("policies.yaml", []byte(livePolicies))
	if err != nil {
		t.Fatal(err)
	}
	music, err := media.NewMusicOnHold(configs.MusicOnHold)
	if err != nil {
		t.Fatal(err)
	}
	var users []User
	for _, u := range []struct{ name, display string }{{"1001", "Alice"}, {"1002", "Bob"}, {"1003", "Carol"}, {"1004", "Dave"}} {
		groups := []string{"staff"}
		if u.name == "1004" {
			groups = nil
		}
		users = append(users, User{ID: u.name + "@" + liveDomain, DisplayName: u.display, Password: "demo" + u.name, Groups: groups})
	}
	opts := Options{
		Domain: liveDomain, Listen: []Listen{{Network: "udp", Addr: "127.0.0.1:0"}}, Ports: ports,
		Directory: NewDirectory(users, nil), Policies: pols, Music: music,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		// The tests' phones share the process, and a loaded test machine
		// is not an overloaded switch: shedding is overload_test.go's.
		OverloadWait: -1,
	}
	if tune != nil {
		tune(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, stopMusic := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		music.Run(ctx)
	}()
	t.Cleanup(func() {
		// Every call must be over before shutdown, which would hide a
		// leak by hanging calls up itself.
		liveSettled(t, "calls to end", func() bool { return s.ActiveCalls() == 0 })
		liveSettled(t, "dialogs to be forgotten", func() bool { return s.Dialogs() == 0 })
		liveSettled(t, "RTP ports to be returned", func() bool { return ports.InUse() == 0 })
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		stopMusic()
		<-ran
		goleak.VerifyNone(t, before)
	})
	return &live{Switch: s, ports: ports}
}

// liveSettled waits up to 5 s for cond, and fails the test, going on, if it
// does not hold by then.
func liveSettled(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// phone is a registered phone of user, closed when the test ends (before
// the switch's leak checks, which were registered first).
func (s *live) phone(t *testing.T, ctx context.Context, user string) *siptest.Phone {
	t.Helper()
	p, err := siptest.NewPhone(ctx, siptest.Config{
		User: user, Password: "demo" + user, Domain: liveDomain, Server: s.Addr("udp").String(),
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatalf("phone %s: %v", user, err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Register(ctx, 300); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return p
}

// liveCall has caller dial callee's user and callee answer; it returns
// both ends.
func liveCall(t *testing.T, ctx context.Context, caller, callee *siptest.Phone, dial string) (*siptest.Call, *siptest.Call) {
	t.Helper()
	got := make(chan *siptest.Call, 1)
	go func() {
		select {
		case in := <-callee.Incoming():
			c, err := in.Answer(ctx)
			if err != nil {
				t.Errorf("answer: %v", err)
			}
			got <- c
		case <-ctx.Done():
			got <- nil
		}
	}()
	a, err := caller.Dial(ctx, dial)
	if err != nil {
		t.Fatalf("dial %s: %v", dial, err)
	}
	b := <-got
	if b == nil {
		t.Fatal("the callee did not answer")
	}
	return a, b
}

// liveTalk sends n RTP packets each way and checks that each end counted
// nearly all of them, from the switch's relay.
func liveTalk(t *testing.T, ctx context.Context, a, b *siptest.Call, n int) {
	t.Helper()
	a0, b0 := a.RTPReceived(), b.RTPReceived()
	errs := make(chan error, 2)
	go func() { errs <- a.SendRTP(ctx, n, 2*time.Millisecond) }()
	go func() { errs <- b.SendRTP(ctx, n, 2*time.Millisecond) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("send RTP: %v", err)
		}
	}
	want := uint64(n * 9 / 10)
	waitFor(t, "RTP at both ends", func() bool { return a.RTPReceived()-a0 >= want && b.RTPReceived()-b0 >= want })
	for _, c := range []*siptest.Call{a, b} {
		if src := c.RTPSource(); src == a.LocalMedia() || src == b.LocalMedia() {
			t.Errorf("RTP came straight from the other phone (%v), not through the relay", src)
		}
	}
}

// liveHears waits until c has received n more RTP packets.
func liveHears(t *testing.T, c *siptest.Call, n uint64, what string) {
	t.Helper()
	start := c.RTPReceived()
	waitFor(t, what, func() bool { return c.RTPReceived()-start >= n })
}

// liveEnded waits for c's dialog to end.
func liveEnded(t *testing.T, c *siptest.Call, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the dialog did not end", what)
	}
}

// liveReInvited waits for the switch's next re-INVITE of c.
func liveReInvited(t *testing.T, c *siptest.Call, what string) *sip.Request {
	t.Helper()
	select {
	case r := <-c.ReInvites():
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no re-INVITE", what)
	}
	return nil
}

// liveReferState waits for the next NOTIFY of a REFER on c and checks that
// its sipfrag starts with frag.
func liveReferState(t *testing.T, c *siptest.Call, frag string) {
	t.Helper()
	select {
	case n := <-c.Notifies():
		if ev := n.GetHeader("Event"); ev == nil || !strings.HasPrefix(ev.Value(), "refer") {
			t.Errorf("NOTIFY event %v, want refer", ev)
		}
		if ss := n.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), "terminated") {
			t.Errorf("NOTIFY subscription state %v, want terminated", ss)
		}
		if !strings.HasPrefix(string(n.Body()), frag) {
			t.Errorf("NOTIFY says %q, want %q", n.Body(), frag)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no NOTIFY %q", frag)
	}
}
