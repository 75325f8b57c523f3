package siptest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// sipgo reports connection book-keeping at shutdown through its
	// global logger; keep test output to the tests.
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// noLeaks registers the goroutine check first so it runs after every
// phone's Close cleanup.
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestPhone(t *testing.T, user, transport string, mod ...func(*Config)) *Phone {
	t.Helper()
	cfg := Config{User: user, Password: "demo" + user, Domain: "contoso.com", Transport: transport}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := NewPhone(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewPhone(%s): %v", user, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// connect has a dial b directly and b answer; it returns both legs.
func connect(t *testing.T, ctx context.Context, a, b *Phone) (*Call, *Call) {
	t.Helper()
	type result struct {
		c   *Call
		err error
	}
	answered := make(chan result, 1)
	go func() {
		select {
		case in := <-b.Incoming():
			c, err := in.Answer(ctx)
			answered <- result{c, err}
		case <-ctx.Done():
			answered <- result{nil, ctx.Err()}
		}
	}()
	ca, err := a.DialURI(ctx, b.Contact())
	if err != nil {
		t.Fatalf("DialURI: %v", err)
	}
	r := <-answered
	if r.err != nil {
		t.Fatalf("Answer: %v", r.err)
	}
	return ca, r.c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func TestCallSetupRTPAndBye(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			noLeaks(t)
			ctx := testCtx(t)
			a := newTestPhone(t, "1001", tp, func(c *Config) { c.DisplayName = "Alice" })
			b := newTestPhone(t, "1002", tp)

			answered := make(chan *Call, 1)
			go func() {
				in := <-b.Incoming()
				if in.FromUser != "1001" || in.FromDisplay != "Alice" || in.ToUser != "1002" {
					t.Errorf("incoming identity = %q %q -> %q", in.FromDisplay, in.FromUser, in.ToUser)
				}
				c, err := in.Answer(ctx)
				if err != nil {
					t.Errorf("Answer: %v", err)
				}
				answered <- c
			}()
			ca, err := a.DialURI(ctx, b.Contact())
			if err != nil {
				t.Fatalf("DialURI: %v", err)
			}
			cb := recv(t, "answer", answered)
			if cb == nil {
				t.FailNow()
			}
			if got := recv(t, "Answered", b.Answered()); got != cb {
				t.Errorf("Answered() delivered another call")
			}
			if ca.RemoteMedia() != cb.LocalMedia() || cb.RemoteMedia() != ca.LocalMedia() {
				t.Fatalf("media: a->%v (b has %v), b->%v (a has %v)",
					ca.RemoteMedia(), cb.LocalMedia(), cb.RemoteMedia(), ca.LocalMedia())
			}
			if res := ca.FinalResponse(); res == nil || res.StatusCode != 200 {
				t.Fatalf("FinalResponse = %v", res)
			}

			if err := ca.SendRTP(ctx, 20, 2*time.Millisecond); err != nil {
				t.Fatalf("a SendRTP: %v", err)
			}
			if err := cb.SendRTP(ctx, 15, 0); err != nil {
				t.Fatalf("b SendRTP: %v", err)
			}
			eventually(t, "RTP both ways", func() bool { return cb.RTPReceived() == 20 && ca.RTPReceived() == 15 })
			if cb.RTPReceivedPT(0) != 20 || ca.RTPSent() != 20 {
				t.Errorf("PCMU at b = %d, sent by a = %d", cb.RTPReceivedPT(0), ca.RTPSent())
			}
			if cb.RTPSource() != ca.LocalMedia() {
				t.Errorf("RTP from %v, want a's socket %v (symmetric RTP)", cb.RTPSource(), ca.LocalMedia())
			}

			if err := ca.Hangup(ctx); err != nil {
				t.Fatalf("Hangup: %v", err)
			}
			waitClosed(t, "b's call to end", cb.Done())
			if ca.EndReason() != EndLocalHangup || cb.EndReason() != EndRemoteHangup {
				t.Errorf("end reasons a=%q b=%q", ca.EndReason(), cb.EndReason())
			}
			if err := ca.Hangup(ctx); !errors.Is(err, ErrCallEnded) {
				t.Errorf("second Hangup = %v, want ErrCallEnded", err)
			}
			if err := ca.SendRTP(ctx, 1, 0); !errors.Is(err, ErrCallEnded) {
				t.Errorf("SendRTP after hangup = %v", err)
			}
		})
	}
}

func TestByeFromCallee(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	a := newTestPhone(t, "1001", "udp")
	b := newTestPhone(t, "1002", "udp")
	ca, cb := connect(t, ctx, a, b)
	if err := cb.Hangup(ctx); err != nil {
		t.Fatalf("callee Hangup: %v", err)
	}
	waitClosed(t, "caller's call to end", ca.Done())
	if ca.EndReason() != EndRemoteHangup {
		t.Errorf("caller end reason %q", ca.EndReason())
	}
	if len(a.Calls()) != 0 || len(b.Calls()) != 0 {
		t.Errorf("calls left: a=%d b=%d", len(a.Calls()), len(b.Calls()))
	}
}

func TestHoldResumeBothDirections(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			noLeaks(t)
			ctx := testCtx(t)
			a := newTestPhone(t, "1001", tp)
			b := newTestPhone(t, "1002", tp)
			ca, cb := connect(t, ctx, a, b)

			if err := ca.Hold(ctx); err != nil {
				t.Fatalf("Hold: %v", err)
			}
			if d := SDPDirection(ca.LastAnswerSDP()); d != "recvonly" {
				t.Errorf("answer to hold = %q, want recvonly", d)
			}
			re := recv(t, "re-INVITE at b", cb.ReInvites())
			if d := SDPDirection(re.Body()); d != "sendonly" {
				t.Errorf("b saw offer %q", d)
			}
			if ca.LocalDirection() != "sendonly" || cb.LocalDirection() != "recvonly" || cb.RemoteDirection() != "sendonly" {
				t.Errorf("directions a=%s b=%s b.remote=%s", ca.LocalDirection(), cb.LocalDirection(), cb.RemoteDirection())
			}
			if string(cb.LastRemoteOffer()) != string(re.Body()) {
				t.Errorf("LastRemoteOffer differs from the re-INVITE body")
			}
			if err := ca.SendRTP(ctx, 5, 0); err != nil {
				t.Fatal(err)
			}
			eventually(t, "RTP while held", func() bool { return cb.RTPReceived() == 5 })

			if err := ca.Resume(ctx); err != nil {
				t.Fatalf("Resume: %v", err)
			}
			if d := SDPDirection(ca.LastAnswerSDP()); d != "sendrecv" {
				t.Errorf("answer to resume = %q", d)
			}
			recv(t, "resume re-INVITE at b", cb.ReInvites())

			// The callee re-INVITEs too: its CSeq space is its own.
			if err := cb.Hold(ctx); err != nil {
				t.Fatalf("callee Hold: %v", err)
			}
			if ca.LocalDirection() != "recvonly" {
				t.Errorf("caller answered %q to callee hold", ca.LocalDirection())
			}
			if err := cb.Resume(ctx); err != nil {
				t.Fatalf("callee Resume: %v", err)
			}
			if ca.LocalDirection() != "sendrecv" || !ca.Established() || !cb.Established() {
				t.Errorf("after resume: a=%s established=%v/%v", ca.LocalDirection(), ca.Established(), cb.Established())
			}
		})
	}
}

func TestInfoAndDTMF(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	a := newTestPhone(t, "1001", "udp")
	b := newTestPhone(t, "1002", "udp")
	ca, cb := connect(t, ctx, a, b)

	code, err := ca.SendDTMF(ctx, '5')
	if err != nil || code != 200 {
		t.Fatalf("SendDTMF = %d, %v", code, err)
	}
	info := recv(t, "INFO", cb.Infos())
	if !strings.Contains(string(info.Body()), "Signal=5") {
		t.Errorf("INFO body %q", info.Body())
	}
	if ct := info.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/dtmf-relay" {
		t.Errorf("INFO Content-Type %v", ct)
	}

	if err := ca.SendRTPEvent(ctx, '#'); err != nil {
		t.Fatalf("SendRTPEvent: %v", err)
	}
	eventually(t, "RFC 4733 digit and all its packets", func() bool {
		return cb.DTMFReceived() == "#" && cb.RTPReceivedPT(ptEvent) == 6
	})
}

func TestCancelBeforeAnswer(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			noLeaks(t)
			ctx := testCtx(t)
			a := newTestPhone(t, "1001", tp)
			b := newTestPhone(t, "1002", tp)

			c, err := a.DialURIAsync(ctx, b.Contact())
			if err != nil {
				t.Fatal(err)
			}
			in := recv(t, "INVITE at b", b.Incoming())
			waitClosed(t, "180 at a", c.Ringing())
			if err := c.Cancel(ctx); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			if err := c.Wait(ctx); StatusCode(err) != 487 {
				t.Fatalf("Wait = %v, want 487", err)
			}
			waitClosed(t, "b to see the CANCEL", in.Canceled())
			if _, err := in.Answer(ctx); !errors.Is(err, ErrCanceled) {
				t.Errorf("Answer after CANCEL = %v", err)
			}
			waitClosed(t, "a's call to end", c.Done())
			if c.EndReason() != EndCanceled {
				t.Errorf("end reason %q", c.EndReason())
			}
		})
	}
}

func TestBusyAndReject(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	a := newTestPhone(t, "1001", "udp")
	b := newTestPhone(t, "1002", "udp")

	b.Busy(true)
	_, err := a.DialURI(ctx, b.Contact())
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 486 {
		t.Fatalf("Dial to busy phone = %v, want 486", err)
	}

	b.Busy(false)
	go func() {
		in := <-b.Incoming()
		_ = in.Reject(603)
	}()
	if _, err := a.DialURI(ctx, b.Contact()); StatusCode(err) != 603 {
		t.Fatalf("Dial rejected = %v, want 603", err)
	}

	b.AutoAnswer(true)
	c, err := a.DialURI(ctx, b.Contact())
	if err != nil {
		t.Fatalf("Dial auto-answer: %v", err)
	}
	cb := recv(t, "auto-answered call", b.Answered())
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "callee end", cb.Done())
}

func TestReferDefaultAndAccepted(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	a := newTestPhone(t, "1001", "udp")
	b := newTestPhone(t, "1002", "udp")
	ca, cb := connect(t, ctx, a, b)

	code, err := cb.Refer(ctx, "sip:park@contoso.com")
	if err != nil || code != 405 {
		t.Fatalf("REFER to default phone = %d, %v; want 405", code, err)
	}
	ref := recv(t, "REFER at a", ca.Refers())
	if h := ref.GetHeader("Refer-To"); h == nil || !strings.Contains(h.Value(), "sip:park@contoso.com") {
		t.Errorf("Refer-To = %v", h)
	}

	a.AcceptRefer(true)
	code, err = cb.Refer(ctx, "sip:park@contoso.com")
	if err != nil || code != 202 {
		t.Fatalf("REFER = %d, %v; want 202", code, err)
	}
	n := recv(t, "NOTIFY at b", cb.Notifies())
	if ev := n.GetHeader("Event"); ev == nil || ev.Value() != "refer" {
		t.Errorf("NOTIFY Event = %v", ev)
	}
	if !strings.HasPrefix(string(n.Body()), "SIP/2.0 200 OK") {
		t.Errorf("NOTIFY body %q", n.Body())
	}
	if !ca.Established() || !cb.Established() {
		t.Errorf("REFER must not end the call")
	}
}

func TestMessageDelivered(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	a := newTestPhone(t, "1001", "udp")
	b := newTestPhone(t, "1002", "tcp")
	bb := newTestPhone(t, "1003", "tcp")
	code, err := bb.SendMessage(ctx, b.Contact(), "Call from Alice (1001) parked at 10")
	if err != nil || code != 200 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	m := recv(t, "MESSAGE", b.Messages())
	if string(m.Body()) != "Call from Alice (1001) parked at 10" {
		t.Errorf("body %q", m.Body())
	}
	code, err = a.SendMessage(ctx, a.Contact(), "to myself")
	if err != nil || code != 200 {
		t.Fatalf("SendMessage to self = %d, %v", code, err)
	}
	recv(t, "own MESSAGE", a.Messages())
}

func TestCloseEndsCalls(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	a := newTestPhone(t, "1001", "udp")
	b := newTestPhone(t, "1002", "udp")
	c := newTestPhone(t, "1003", "udp")
	_, cb := connect(t, ctx, a, b)

	ring, err := a.DialURIAsync(ctx, c.Contact())
	if err != nil {
		t.Fatal(err)
	}
	in := recv(t, "INVITE at c", c.Incoming())
	waitClosed(t, "ringing", ring.Ringing())

	a.Close()
	waitClosed(t, "b to get BYE", cb.Done())
	if cb.EndReason() != EndRemoteHangup {
		t.Errorf("b end reason %q", cb.EndReason())
	}
	waitClosed(t, "c to get CANCEL", in.Canceled())
	if _, err := a.DialURI(ctx, c.Contact()); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close = %v", err)
	}
}

func TestParseSDP(t *testing.T) {
	body := "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n"
	info, err := ParseSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if info.Media.String() != "10.0.0.1:4000" || info.Direction != "sendonly" || info.EventPT != 96 || len(info.Formats) != 2 {
		t.Fatalf("ParseSDP = %+v", info)
	}
	pts, ev, ok := negotiate(info)
	if !ok || len(pts) != 1 || pts[0] != ptPCMA || ev != 96 {
		t.Errorf("negotiate = %v %d %v", pts, ev, ok)
	}
	if d := answerDirection(info.Direction, false); d != "recvonly" {
		t.Errorf("answer to sendonly = %s", d)
	}
	if SDPDirection([]byte("garbage")) != "" {
		t.Errorf("SDPDirection of garbage")
	}
}
