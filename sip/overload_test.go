package sip

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestOverloadSheds drives the overload control by hand (the scheduler's
// wait is the test's) on a live switch: while the switch is behind, new
// calls and registrations get one 503 each and no other answer, and calls
// already up go on (re-INVITE, BYE); once it has caught up, calls go
// through again.
func TestOverloadSheds(t *testing.T) {
	var wait atomic.Int64 // the scheduler's wait the control sees, ns
	s := startLive(t, func(o *Options) {
		o.OverloadWait = 40 * time.Millisecond
		o.overloadSample = func() time.Duration { return time.Duration(wait.Load()) }
		o.overloadEvery = 5 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob, carol := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002"), s.phone(t, ctx, "1003")
	up, upB := liveCall(t, ctx, alice, bob, "1002")

	wait.Store(int64(time.Second))
	waitFor(t, "the control to shed everything", func() bool { share, _ := s.load.ctl.State(); return share == 0 })

	// A new call: 503, and the callee never rings.
	if _, err := carol.Dial(ctx, "1002"); siptest.StatusCode(err) != 503 {
		t.Fatalf("call while behind: %v, want 503", err)
	}
	select {
	case <-bob.Incoming():
		t.Fatal("a shed call rang the callee")
	default:
	}
	if err := carol.Register(ctx, 300); siptest.StatusCode(err) != 503 {
		t.Fatalf("registration while behind: %v, want 503", err)
	}
	// Before any other check: an INVITE from a source that never ACKs
	// gets one 503 (no 100, no 407, no retransmission), smaller than it.
	n, in := rawInviteAnswers(t, s.Addr("udp").String(), 1600*time.Millisecond)
	if len(n) != 1 || !bytes.HasPrefix(n[0], []byte("SIP/2.0 503 Server Overloaded\r\n")) || len(n[0]) >= in {
		t.Fatalf("answers to an INVITE while behind: %q, want one 503 shorter than the %d-byte INVITE", n, in)
	}

	// The call that was up before goes on, and ends cleanly.
	if err := up.Hold(ctx); err != nil {
		t.Fatalf("re-INVITE of a call already up, while behind: %v", err)
	}
	liveTalk(t, ctx, up, upB, 20)
	if err := up.Hangup(ctx); err != nil {
		t.Fatalf("BYE while behind: %v", err)
	}
	liveEnded(t, upB, "the callee of a call hung up while behind")
	if got := testutil.ToFloat64(s.metrics.refused.WithLabelValues("overload")); got != 3 {
		t.Errorf("refusals for overload: %v, want 3 (call, registration, raw INVITE)", got)
	}

	wait.Store(0)
	waitFor(t, "the control to admit everything", func() bool { share, _ := s.load.ctl.State(); return share == 1 })
	if err := carol.Register(ctx, 300); err != nil {
		t.Fatalf("registration after catching up: %v", err)
	}
	a, b := liveCall(t, ctx, carol, bob, "1002")
	liveTalk(t, ctx, a, b, 20)
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	liveEnded(t, b, "the callee of a call after catching up")
}

// rawInviteAnswers sends one unauthenticated INVITE from a socket that
// never ACKs and returns every datagram that came back within d, and the
// INVITE's size.
func rawInviteAnswers(t *testing.T, server string, d time.Duration) ([][]byte, int) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	msg := []byte("INVITE sip:1002@" + liveDomain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-shed1;rport\r\n" +
		"From: <sip:1001@" + liveDomain + ">;tag=shed1\r\nTo: <sip:1002@" + liveDomain + ">\r\n" +
		"Call-ID: shed-1@" + local + "\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	dst, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo(msg, dst); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	deadline := time.Now().Add(d)
	buf := make([]byte, 65535)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return got, len(msg)
		}
		got = append(got, bytes.Clone(buf[:n]))
	}
}

func TestStartsWork(t *testing.T) {
	uri := sip.Uri{Scheme: "sip", User: "1002", Host: liveDomain}
	tests := []struct {
		method   sip.RequestMethod
		toTag    string
		noTo     bool
		replaces bool
		want     bool
	}{
		{method: sip.INVITE, want: true},
		{method: sip.INVITE, toTag: "x"},     // re-INVITE
		{method: sip.INVITE, replaces: true}, // moves a call (RFC 3891)
		{method: sip.SUBSCRIBE, want: true},
		{method: sip.SUBSCRIBE, toTag: "x"}, // refresh
		{method: sip.REGISTER, want: true},
		{method: sip.BYE, toTag: "x"},
		{method: sip.ACK},
		{method: sip.CANCEL},
		{method: sip.OPTIONS},
		{method: sip.INVITE, noTo: true}, // malformed: not this check's to answer
	}
	for _, tt := range tests {
		req := sip.NewRequest(tt.method, uri)
		if !tt.noTo {
			to := &sip.ToHeader{Address: uri, Params: sip.NewParams()}
			if tt.toTag != "" {
				to.Params.Add("tag", tt.toTag)
			}
			req.AppendHeader(to)
		}
		if tt.replaces {
			req.AppendHeader(sip.NewHeader("Replaces", "abc@host;to-tag=1;from-tag=2"))
		}
		if got := startsWork(req); got != tt.want {
			t.Errorf("%s (To tag %q, no To %v): %v, want %v", tt.method, tt.toTag, tt.noTo, got, tt.want)
		}
	}
}
