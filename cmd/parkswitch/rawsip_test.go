package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawUDP is a UDP socket for hand-written SIP to the listener of ts, at dst;
// it closes when the test ends.
func rawUDP(t *testing.T, ts *testServer) (conn net.PacketConn, dst *net.UDPAddr) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dst, err = net.ResolveUDPAddr("udp", ts.udpAddr())
	if err != nil {
		t.Fatal(err)
	}
	return conn, dst
}

// TestRawRequests sends hand-written requests the way phones really write
// them (compact headers, odd Contact parameters, methods the switch does
// not offer) and checks each gets the status a PBX gives: never silence.
func TestRawRequests(t *testing.T) {
	ts := startServer(t, "", nil)
	conn, dst := rawUDP(t, ts)
	local := conn.LocalAddr().String()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\n"

	tests := []struct {
		name, msg string
		want      int
	}{
		{"REGISTER with compact headers and instance params", "REGISTER sip:contoso.com SIP/2.0\r\n" +
			"v: SIP/2.0/UDP " + local + ";branch=z9hG4bK-c1;rport\r\n" +
			"f: <sip:1001@contoso.com>;tag=a1\r\nt: <sip:1001@contoso.com>\r\ni: compact-1\r\nCSeq: 1 REGISTER\r\n" +
			"m: <sip:1001@" + local + ";ob>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\";reg-id=1\r\n" +
			"Max-Forwards: 70\r\nl: 0\r\n\r\n", 401},
		{"OPTIONS keep-alive", "OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-o1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=o1\r\nTo: <sip:contoso.com>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 200},
		{"INVITE requiring 100rel", "INVITE sip:1002@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-r1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=r1\r\nTo: <sip:1002@contoso.com>\r\nCall-ID: req-1\r\nCSeq: 1 INVITE\r\n" +
			"Contact: <sip:1001@" + local + ">\r\nRequire: 100rel\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: " + itoa(len(sdp)) + "\r\n\r\n" + sdp, 420},
		{"INVITE with a body that is not SDP", "INVITE sip:1002@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-b1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=b1\r\nTo: <sip:1002@contoso.com>\r\nCall-ID: body-1\r\nCSeq: 1 INVITE\r\n" +
			"Contact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", 415},
		{"INVITE with compact headers is challenged", "INVITE sip:1002@contoso.com SIP/2.0\r\nv: SIP/2.0/UDP " + local + ";branch=z9hG4bK-i1;rport\r\n" +
			"f: <sip:1001@contoso.com>;tag=i1\r\nt: <sip:1002@contoso.com>\r\ni: inv-1\r\nCSeq: 1 INVITE\r\n" +
			"m: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nc: application/sdp\r\nl: " + itoa(len(sdp)) + "\r\n\r\n" + sdp, 407},
		{"PUBLISH", "PUBLISH sip:1001@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-p1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=p1\r\nTo: <sip:1001@contoso.com>\r\nCall-ID: pub-1\r\nCSeq: 1 PUBLISH\r\nEvent: presence\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 405},
		{"SUBSCRIBE to message-summary", "SUBSCRIBE sip:1001@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-s1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=s1\r\nTo: <sip:1001@contoso.com>\r\nCall-ID: sub-1\r\nCSeq: 1 SUBSCRIBE\r\nEvent: message-summary\r\nContact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 489},
		{"SUBSCRIBE without Event", "SUBSCRIBE sip:10@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-s2;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=s2\r\nTo: <sip:10@contoso.com>\r\nCall-ID: sub-2\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 400},
		{"SUBSCRIBE to a park lamp is challenged", "SUBSCRIBE sip:10@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-s3;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=s3\r\nTo: <sip:10@contoso.com>\r\nCall-ID: sub-3\r\nCSeq: 1 SUBSCRIBE\r\nEvent: dialog\r\nAccept: application/dialog-info+xml\r\nContact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 407},
		{"SUBSCRIBE refresh of no subscription", "SUBSCRIBE sip:10@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-s4;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=s4\r\nTo: <sip:10@contoso.com>;tag=nope\r\nCall-ID: sub-4\r\nCSeq: 2 SUBSCRIBE\r\nEvent: dialog\r\nContact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 481},
		{"SUBSCRIBE to dialog that accepts no dialog-info", "SUBSCRIBE sip:10@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-s5;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=s5\r\nTo: <sip:10@contoso.com>\r\nCall-ID: sub-5\r\nCSeq: 1 SUBSCRIBE\r\nEvent: dialog\r\nAccept: application/pidf+xml\r\nContact: <sip:1001@" + local + ">\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 406},
		{"BYE for no dialog", "BYE sip:1002@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-y1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=y1\r\nTo: <sip:1002@contoso.com>;tag=nope\r\nCall-ID: bye-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 481},
		{"Max-Forwards 0", "OPTIONS sip:1002@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-m1;rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=m1\r\nTo: <sip:1002@contoso.com>\r\nCall-ID: mf-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n", 483},
	}
	buf := make([]byte, 8192)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := conn.WriteTo([]byte(tt.msg), dst); err != nil {
				t.Fatal(err)
			}
			callID := callIDOf([]byte(tt.msg))
			deadline := time.Now().Add(2 * time.Second)
			for {
				conn.SetReadDeadline(deadline)
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					t.Fatalf("no answer (want %d)", tt.want)
				}
				code, ok := statusOf(buf[:n])
				if !ok || code == 100 || callIDOf(buf[:n]) != callID {
					continue
				}
				if code != tt.want {
					t.Fatalf("answered %d, want %d:\n%s", code, tt.want, strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
				}
				return
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
