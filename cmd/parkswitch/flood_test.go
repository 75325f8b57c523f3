package main

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// floodInvite is an unauthenticated INVITE as scanners send them: a full
// offer, no credentials, a fresh branch and Call-ID per request.
func floodInvite(local string, i int) []byte {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
	n := strconv.Itoa(i)
	return []byte("INVITE sip:1002@contoso.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-flood" + n + ";rport\r\n" +
		"From: <sip:1001@contoso.com>;tag=fl" + n + "\r\nTo: <sip:1002@contoso.com>\r\n" +
		"Call-ID: flood-" + n + "@" + local + "\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nUser-Agent: friendly-scanner\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp)
}

// TestInviteFloodIsNotAmplified sends a flood of unauthenticated INVITEs
// from a socket that never ACKs and counts what comes back: a challenge
// that the switch retransmitted (RFC 3261 Timer G, every 0.5, 1, 2 s…)
// would turn the switch into a reflector toward a spoofed source. Each
// INVITE gets one 407 and nothing more, so bytes out stay under twice the
// bytes in.
func TestInviteFloodIsNotAmplified(t *testing.T) {
	ts := startServer(t, "", nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(8 << 20) // retransmissions must not be lost here, or they go uncounted
	local := conn.LocalAddr().String()
	dst, _ := net.ResolveUDPAddr("udp", ts.udpAddr())

	var bytesOut, responses, challenges, trying atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 65535)
		for ctx.Err() == nil {
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				continue
			}
			bytesOut.Add(int64(n))
			responses.Add(1)
			switch code, _ := statusOf(buf[:n]); code {
			case 407:
				challenges.Add(1)
			case 100:
				trying.Add(1) // the stack's own, when a handler is slower than 200 ms
			}
		}
	}()

	const invites = 2000
	var bytesIn int64
	for i := range invites {
		msg := floodInvite(local, i)
		if _, err := conn.WriteTo(msg, dst); err != nil {
			t.Fatal(err)
		}
		bytesIn += int64(len(msg))
		if i%100 == 99 {
			time.Sleep(5 * time.Millisecond) // as fast as the switch's socket drains, no faster
		}
	}
	// Long enough for Timer G's first two retransmissions (0.5 s and 1.5 s
	// after each 407) to be seen if there are any.
	time.Sleep(2500 * time.Millisecond)
	cancel()
	<-readDone

	out := bytesOut.Load()
	ratio := float64(out) / float64(bytesIn)
	t.Logf("%d INVITEs, %d bytes in; %d responses (%d 407, %d 100), %d bytes out: %.2f× the input",
		invites, bytesIn, responses.Load(), challenges.Load(), trying.Load(), out, ratio)
	if got := challenges.Load(); got < invites*95/100 {
		t.Errorf("only %d of %d INVITEs were challenged", got, invites)
	}
	if challenges.Load() > invites {
		t.Errorf("%d challenges for %d INVITEs: challenges were retransmitted", challenges.Load(), invites)
	}
	if out > 2*bytesIn {
		t.Errorf("bytes out %d > 2 × bytes in %d: the switch amplifies toward unverified sources", out, bytesIn)
	}
}
