package sip

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestCompletedTransactionWait sends one OPTIONS three times, the same
// bytes, to a sipgo server under this package's timers: a copy 1 s after
// the first is absorbed by the completed transaction, which answers it
// again, and one 2.5 s after it, past completedWait, is a new request
// that reaches the handler. Under sipgo's own Timer J (32 s, or T4's 5 s)
// the third copy would be absorbed too.
func TestCompletedTransactionWait(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 2.5 s")
	}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		handled.Add(1)
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.ServeUDP(l) }()
	defer func() { l.Close(); <-served }()

	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := []byte("OPTIONS sip:" + l.LocalAddr().String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-wait1\r\n" +
		"From: <sip:1001@contoso.com>;tag=w1\r\nTo: <sip:contoso.com>\r\nCall-ID: wait-1\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	buf := make([]byte, 4096)
	send := func(after time.Duration) int32 {
		t.Helper()
		time.Sleep(after)
		if _, err := conn.WriteTo(msg, l.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := conn.ReadFrom(buf); err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return handled.Load()
	}
	if n := send(0); n != 1 {
		t.Fatalf("first request: handled %d times", n)
	}
	if n := send(time.Second); n != 1 {
		t.Fatalf("a copy 1 s later reached the handler: its transaction was gone")
	}
	if n := send(1500 * time.Millisecond); n != 2 {
		t.Fatalf("a copy 2.5 s later was absorbed (handled %d times): the transaction outlived completedWait (%v)", n, completedWait)
	}
}
