package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// invalid4475 are the RFC 4475 messages (§3.1.2 and the §3.3/3.4 ones the
// switch must not route) that may only be answered with a refusal or
// dropped: never challenged, never routed.
var invalid4475 = []string{
	"badinv01", "clerr", "ncl", "scalar02", "scalarlg", "quotbal", "ltgtruri", "lwsruri", "lwsstart",
	"trws", "badaspec", "baddn", "bigcode", "escruri", "baddate", "mismatch01", "mismatch02", "badvers",
	"regbadct", "insuf", "multi01", "mcl01", "unkscm", "novelsc", "zeromf", "inv2543",
}

// TestTortureMessages replays every RFC 4475 message at the UDP listener.
// Invalid ones get 400-class refusals (or nothing); afterwards the switch
// still registers phones and carries a call.
func TestTortureMessages(t *testing.T) {
	ts := startServer(t, "", nil)
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "rfc4475", "*.dat"))
	if err != nil || len(files) < 40 {
		t.Fatalf("torture messages: %v (%d files)", err, len(files))
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp", ts.udpAddr())
	refusals := map[int]bool{400: true, 416: true, 483: true, 505: true}
	bad := map[string]bool{}
	for _, n := range invalid4475 {
		bad[n] = true
	}
	buf := make([]byte, 65535)
	// Responses are matched by Call-ID: final responses to INVITE are
	// retransmitted, so they also arrive while later messages are sent.
	codes := map[string][]int{}
	read := func(until time.Time) {
		for {
			conn.SetReadDeadline(until)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if code, ok := statusOf(buf[:n]); ok {
				id := callIDOf(buf[:n])
				if !slices.Contains(codes[id], code) {
					codes[id] = append(codes[id], code)
				}
			}
		}
	}
	names := map[string]string{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".dat")
		msg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteTo(msg, dst); err != nil {
			t.Fatal(err)
		}
		names[name] = callIDOf(msg)
		read(time.Now().Add(50 * time.Millisecond))
	}
	read(time.Now().Add(300 * time.Millisecond))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".dat")
		got := codes[names[name]]
		t.Logf("%-10s -> %v", name, got)
		if bad[name] {
			for _, c := range got {
				if !refusals[c] {
					t.Errorf("%s: invalid message answered %d; want a refusal (400/416/483/505) or nothing", name, c)
				}
			}
		}
	}

	// An extension the switch does not support is refused by name.
	if got := codes[names["bext01"]]; !slices.Contains(got, 420) {
		t.Errorf("bext01 (Require: newfeature1) answered %v, want 420", got)
	}

	// The switch is unharmed: phones register and call.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	callee := make(chan *siptest.Call, 1)
	go func() { callee <- answerNext(t, ctx, bob) }()
	a, err := alice.Dial(ctx, "1002")
	if err != nil {
		t.Fatalf("call after torture: %v", err)
	}
	b := <-callee
	talk(t, ctx, a, b, 20)
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, b, "callee")
}

// callIDOf returns the Call-ID header value of a message ("" if none).
func callIDOf(b []byte) string {
	for _, line := range strings.Split(string(b), "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n := strings.ToLower(strings.TrimSpace(name)); n == "call-id" || n == "i" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// statusOf reads the status code of a SIP response datagram.
func statusOf(b []byte) (int, bool) {
	if !bytes.HasPrefix(b, []byte("SIP/2.0 ")) || len(b) < 11 {
		return 0, false
	}
	code, err := strconv.Atoi(string(b[8:11]))
	return code, err == nil
}
