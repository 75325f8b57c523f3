package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// phone starts a test phone for user (password demo<user>) and registers it
// with the switch over transport.
func phone(t testing.TB, ctx context.Context, ts *testServer, user, transport string) *siptest.Phone {
	t.Helper()
	server := ts.udpAddr()
	if transport == "tcp" {
		server = ts.tcpAddr()
	}
	return phoneAt(t, ctx, server, user, transport)
}

// phoneAt is a registered phone of user on the switch at server.
func phoneAt(t testing.TB, ctx context.Context, server, user, transport string) *siptest.Phone {
	t.Helper()
	p := newPhone(t, ctx, server, user, transport)
	if err := p.Register(ctx, 300); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return p
}

// newPhone starts a test phone for user that sends to the switch at
// server, closed when the test ends; it does not register.
func newPhone(t testing.TB, ctx context.Context, server, user, transport string) *siptest.Phone {
	t.Helper()
	p, err := siptest.NewPhone(ctx, siptest.Config{
		User: user, Password: "demo" + user, Domain: testDomain, Server: server, Transport: transport,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("phone", user).Logger(),
	})
	if err != nil {
		t.Fatalf("phone %s: %v", user, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// answerNext answers the next incoming call on p.
func answerNext(t *testing.T, ctx context.Context, p *siptest.Phone) *siptest.Call {
	t.Helper()
	select {
	case in := <-p.Incoming():
		c, err := in.Answer(ctx)
		if err != nil {
			t.Fatalf("answer: %v", err)
		}
		return c
	case <-ctx.Done():
		t.Fatal("no incoming call")
	}
	return nil
}

// talk sends n packets each way and checks that each end counted them.
func talk(t *testing.T, ctx context.Context, a, b *siptest.Call, n int) {
	t.Helper()
	talkVia(t, ctx, a, b, n, "", "")
}

// talkVia is talk through relays on two addresses: a hears the relay on
// relayA, b the one on relayB (calls between nodes of a cluster); ""
// takes any loopback address.
func talkVia(t *testing.T, ctx context.Context, a, b *siptest.Call, n int, relayA, relayB string) {
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
	// Loopback loses nothing in practice; allow a little slack anyway.
	want := uint64(n * 9 / 10)
	waitUntil(t, 3*time.Second, "RTP at both ends", func() bool {
		return a.RTPReceived()-a0 >= want && b.RTPReceived()-b0 >= want
	})
	if got := a.RTPReceived() - a0; got < want {
		t.Errorf("caller received %d of %d RTP packets", got, n)
	}
	if got := b.RTPReceived() - b0; got < want {
		t.Errorf("callee received %d of %d RTP packets", got, n)
	}
	// The media must come from the switch, not straight from the peer.
	for c, relay := range map[*siptest.Call]string{a: relayA, b: relayB} {
		src := c.RTPSource()
		if !src.Addr().IsLoopback() || (relay != "" && src.Addr().String() != relay) || src == b.LocalMedia() || src == a.LocalMedia() {
			t.Errorf("RTP source %v is not the switch's relay %s", src, relay)
		}
	}
}

func waitDone(t *testing.T, c *siptest.Call, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: dialog did not end", what)
	}
}

// hangUp hangs c up and waits for the far end's dialog, what, to end.
func hangUp(t *testing.T, ctx context.Context, c, far *siptest.Call, what string) {
	t.Helper()
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, far, what)
}

// TestCall covers an ordinary call over UDP and over TCP: register, call,
// audio both ways through the relay, hold and resume, INFO, hang up from
// either side.
func TestCall(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		for _, hangupBy := range []string{"caller", "callee"} {
			t.Run(transport+"/"+hangupBy+" hangs up", func(t *testing.T) {
				ts := startServer(t, "", nil)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				alice := phone(t, ctx, ts, "1001", transport)
				bob := phone(t, ctx, ts, "1002", transport)

				callee := make(chan *siptest.Call, 1)
				go func() { callee <- answerNext(t, ctx, bob) }()
				a, err := alice.Dial(ctx, "1002")
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				b := <-callee
				if b == nil {
					t.FailNow()
				}
				// Both SDPs point at the switch, never at the other phone.
				if a.RemoteMedia() == b.LocalMedia() || b.RemoteMedia() == a.LocalMedia() {
					t.Fatalf("media not anchored: caller sends to %v, callee sends to %v", a.RemoteMedia(), b.RemoteMedia())
				}
				if display, _ := b.RemoteIdentity(); display != "Alice Reception" {
					t.Errorf("callee sees caller as %q, want the configured display name", display)
				}
				talk(t, ctx, a, b, 50)

				// Hold: the sendonly offer reaches the callee, who answers recvonly.
				if err := a.Hold(ctx); err != nil {
					t.Fatalf("hold: %v", err)
				}
				if got := b.RemoteDirection(); got != "sendonly" {
					t.Errorf("callee saw direction %q after hold, want sendonly", got)
				}
				if got := a.RemoteDirection(); got != "recvonly" {
					t.Errorf("caller got answer %q to its hold, want recvonly", got)
				}
				if err := a.Resume(ctx); err != nil {
					t.Fatalf("resume: %v", err)
				}
				if got := b.RemoteDirection(); got != "sendrecv" {
					t.Errorf("callee saw direction %q after resume, want sendrecv", got)
				}
				talk(t, ctx, a, b, 20)

				// DTMF both ways it travels: SIP INFO and RFC 4733 in RTP.
				if code, err := a.SendDTMF(ctx, '5'); err != nil || code != 200 {
					t.Errorf("INFO DTMF: %d %v", code, err)
				}
				select {
				case info := <-b.Infos():
					if !strings.Contains(string(info.Body()), "5") {
						t.Errorf("INFO body at the callee: %q", info.Body())
					}
				case <-time.After(2 * time.Second):
					t.Error("INFO did not reach the callee")
				}
				if err := a.SendRTPEvent(ctx, '7'); err != nil {
					t.Fatalf("RFC 4733 event: %v", err)
				}
				waitUntil(t, 2*time.Second, "RFC 4733 DTMF at the callee", func() bool { return strings.Contains(b.DTMFReceived(), "7") })

				first, second := a, b
				if hangupBy == "callee" {
					first, second = b, a
				}
				if err := first.Hangup(ctx); err != nil {
					t.Fatalf("hangup: %v", err)
				}
				waitDone(t, second, "other side")
			})
		}
	}
}

// TestCancelBeforeAnswer: the caller gives up while the callee rings; the
// callee's INVITE is cancelled and the caller gets 487.
func TestCancelBeforeAnswer(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")

	c, err := alice.DialAsync(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	var in *siptest.Incoming
	select {
	case in = <-bob.Incoming():
	case <-ctx.Done():
		t.Fatal("callee never rang")
	}
	select {
	case <-c.Ringing():
	case <-ctx.Done():
		t.Fatal("caller never heard ringing")
	}
	if err := c.Cancel(ctx); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if code := siptest.StatusCode(c.Wait(ctx)); code != 487 {
		t.Errorf("caller got %d, want 487", code)
	}
	select {
	case <-in.Canceled():
	case <-time.After(5 * time.Second):
		t.Fatal("callee's INVITE was not cancelled")
	}
}

// TestRefusals: busy and declining callees, unknown numbers, users with no
// phone, wrong passwords.
func TestRefusals(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	bob.Busy(true)

	tests := []struct {
		name, dial string
		want       int
	}{
		{"busy callee", "1002", 486},
		{"unknown extension", "7777", 404},
		{"user with no phone", "1003", 480},
		{"extension of a user with no phone", "3003", 480},
	}
	for _, tt := range tests {
		_, err := alice.Dial(ctx, tt.dial)
		if code := siptest.StatusCode(err); code != tt.want {
			t.Errorf("%s: dialing %s got %v, want %d", tt.name, tt.dial, err, tt.want)
		}
	}

	// A wrong password is refused at registration and at INVITE alike, and
	// so is a user that does not exist: the same 403 for both.
	for _, cfg := range []siptest.Config{
		{User: "1001", Password: "wrong"},
		{User: "9999", Password: "demo9999"},
	} {
		cfg.Domain, cfg.Server = testDomain, ts.udpAddr()
		p, err := siptest.NewPhone(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if code := siptest.StatusCode(p.Register(ctx, 60)); code != 403 {
			t.Errorf("REGISTER as %s/%s: got %d, want 403", cfg.User, cfg.Password, code)
		}
		if _, err := p.Dial(ctx, "1002"); siptest.StatusCode(err) != 403 {
			t.Errorf("INVITE as %s/%s: got %v, want 403", cfg.User, cfg.Password, err)
		}
		p.Close()
	}
}

// TestForkFirstAnswerWins: a user with two phones; both ring, the first to
// answer gets the call and the other is cancelled.
func TestForkFirstAnswerWins(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	desk := phone(t, ctx, ts, "1002", "udp")
	mobile := phone(t, ctx, ts, "1002", "tcp")
	if n := len(ts.sw.Registrations()); n != 3 {
		t.Fatalf("%d registrations, want 3", n)
	}

	c, err := alice.DialAsync(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	var deskIn, mobileIn *siptest.Incoming
	for deskIn == nil || mobileIn == nil {
		select {
		case deskIn = <-desk.Incoming():
		case mobileIn = <-mobile.Incoming():
		case <-ctx.Done():
			t.Fatal("both phones should ring")
		}
	}
	b, err := mobileIn.Answer(ctx)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("caller: %v", err)
	}
	select {
	case <-deskIn.Canceled():
	case <-time.After(5 * time.Second):
		t.Fatal("the phone that did not answer was not cancelled")
	}
	talk(t, ctx, c, b, 20)
	hangUp(t, ctx, c, b, "callee")
}

// call sets up a call from caller to callee's user and returns both ends.
func call(t *testing.T, ctx context.Context, caller, callee *siptest.Phone, dial string) (*siptest.Call, *siptest.Call) {
	t.Helper()
	got := make(chan *siptest.Call, 1)
	go func() { got <- answerNext(t, ctx, callee) }()
	a, err := caller.Dial(ctx, dial)
	if err != nil {
		t.Fatalf("dial %s: %v", dial, err)
	}
	b := <-got
	if b == nil {
		t.FailNow()
	}
	return a, b
}

// TestShutdownHangsUp: a graceful shutdown sends BYE on both legs.
func TestShutdownHangsUp(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "tcp")
	a, b := call(t, ctx, alice, bob, "1002")
	if err := ts.shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitDone(t, a, "caller")
	waitDone(t, b, "callee")
	if ts.ports.InUse() != 0 {
		t.Errorf("%d RTP port pairs still allocated", ts.ports.InUse())
	}
}
