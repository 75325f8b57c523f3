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

	sipgosip "github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/sip/sipcheck"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// rfc4475 is the answer the switch gives each RFC 4475 message, as the RFC
// describes it for a registrar and B2BUA that challenges every request
// from an unknown source (401 for REGISTER, 407 for INVITE): 0 is no
// answer at all, which is right for responses and for messages too broken
// to answer.
var rfc4475 = map[string]int{
	// §3.1.1, valid: each is served.
	"wsinv":      481, // an INVITE with a To tag for a dialog the switch does not have
	"intmeth":    405, // an unknown method
	"esc01":      407,
	"escnull":    401,
	"esc02":      405, // RE%47IST%45R is not REGISTER
	"lwsdisp":    200, // OPTIONS
	"longreq":    407, // its 3 KB answer goes back over UDP
	"dblreq":     401, // the REGISTER; the INVITE after its body is not part of it
	"semiuri":    200,
	"transports": 200,
	"mpart01":    405, // MESSAGE outside a dialog is not offered
	"unreason":   0,   // responses matching no transaction are dropped
	"noreason":   0,
	// §3.1.2, invalid: refused with 400 (505 for a bad version) or dropped.
	"badinv01": 0, "clerr": 0, "ncl": 0, "scalar02": 0, "scalarlg": 0, "quotbal": 0,
	"ltgtruri": 0, "lwsruri": 0, "lwsstart": 0, "trws": 0, "escruri": 400, "baddate": 400,
	"regbadct": 400, "badaspec": 0, "baddn": 0, "badvers": 0, "mismatch01": 400,
	"mismatch02": 400, "bigcode": 0,
	// §3.2, transactions: a bare magic cookie is an RFC 2543 branch.
	"badbranch": 200,
	// §3.3, application layer.
	"insuf":    400, // required headers missing
	"unkscm":   416,
	"novelsc":  0, // soap.beep: sipgo's URI parser refuses a scheme with a dot, so no 416 can be sent
	"unksm2":   401,
	"bext01":   420,
	"invut":    415,
	"regaut01": 401, // unknown Authorization scheme: challenged with one it supports (RFC 4475 §3.3.7)
	"multi01":  400,
	"mcl01":    400,
	"bcast":    0, // a response
	"zeromf":   483,
	"cparam01": 401,
	"cparam02": 401,
	"regescrt": 401,
	"sdp01":    407,
	// §3.4: RFC 2543 syntax without From tag or branch cannot be matched
	// to a transaction.
	"inv2543": 400,
	// In the archive, not in the RFC: no SIP version.
	"test": 0,
}

// TestTortureMessages replays every RFC 4475 message at the UDP listener
// and checks each answer. The archive reuses Via branches: cparam02 has
// cparam01's branch, sent-by and method, regescrt escnull's and
// mismatch01 baddate's, so RFC
// 3261 §17.2.3 makes each a retransmission of the other when both arrive
// within a transaction's lifetime (the first one's answer is repeated).
// Each message is meant on its own, so such messages go to a fresh
// server. Afterwards the switch still registers phones and carries a call.
func TestTortureMessages(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "rfc4475", "*.dat"))
	if err != nil || len(files) != 50 {
		t.Fatalf("torture messages: %v (%d files, want 50)", err, len(files))
	}
	// Rounds of messages whose transaction keys are all distinct.
	var rounds [][]string
	var keys []map[string]bool
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".dat")
		if _, ok := rfc4475[name]; !ok {
			t.Errorf("%s has no expected answer", name)
		}
		msg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		key := ""
		if m, err := sipcheck.NewParser().ParseSIP(msg); err == nil {
			key, _ = sipgosip.ServerTxKeyMake(m)
		}
		i := 0
		for ; i < len(rounds) && key != "" && keys[i][key]; i++ {
		}
		if i == len(rounds) {
			rounds, keys = append(rounds, nil), append(keys, map[string]bool{})
		}
		rounds[i], keys[i][key] = append(rounds[i], f), true
	}
	if len(rounds) != 2 {
		t.Errorf("%d rounds, want 2 (cparam02, regescrt and mismatch01 reuse a transaction)", len(rounds))
	}
	answered := 0
	var ts *testServer
	for _, round := range rounds {
		ts = startServer(t, "", nil)
		for name, codes := range replay(t, ts, round) {
			var final []int
			for _, c := range codes {
				if c >= 200 {
					final = append(final, c)
				}
			}
			want := rfc4475[name]
			switch {
			case want == 0 && len(codes) != 0:
				t.Errorf("%s: answered %v, want no answer", name, codes)
			case want != 0 && (len(final) != 1 || final[0] != want):
				t.Errorf("%s: answered %v, want %d", name, codes, want)
			default:
				answered++
			}
		}
	}
	if answered != 50 {
		t.Errorf("%d of 50 messages handled as expected", answered)
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
	hangUp(t, ctx, a, b, "callee")
}

// replay sends each file to the UDP listener of ts and returns, by
// message name, the status codes of the responses carrying its Call-ID.
func replay(t *testing.T, ts *testServer, files []string) map[string][]int {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp", ts.udpAddr())
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
	ids := map[string][]string{}
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteTo(msg, dst); err != nil {
			t.Fatal(err)
		}
		// multi01 has two Call-IDs: the answer may carry either.
		ids[strings.TrimSuffix(filepath.Base(f), ".dat")] = callIDsOf(msg)
		read(time.Now().Add(50 * time.Millisecond))
	}
	read(time.Now().Add(300 * time.Millisecond))
	out := map[string][]int{}
	for name, list := range ids {
		out[name] = nil // no answer is an answer too
		if len(list) == 0 {
			list = []string{""} // insuf has no Call-ID, nor has its answer
		}
		for _, id := range list {
			for _, c := range codes[id] {
				if !slices.Contains(out[name], c) {
					out[name] = append(out[name], c)
				}
			}
		}
		t.Logf("%-10s -> %v", name, out[name])
	}
	return out
}

// callIDOf returns the Call-ID header value of a message ("" if none).
func callIDOf(b []byte) string {
	if ids := callIDsOf(b); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// callIDsOf returns every Call-ID header value of a message's header.
func callIDsOf(b []byte) []string {
	var ids []string
	for _, line := range strings.Split(string(b), "\r\n") {
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n := strings.ToLower(strings.TrimSpace(name)); n == "call-id" || n == "i" {
			ids = append(ids, strings.TrimSpace(value))
		}
	}
	return ids
}

// statusOf reads the status code of a SIP response datagram.
func statusOf(b []byte) (int, bool) {
	if !bytes.HasPrefix(b, []byte("SIP/2.0 ")) || len(b) < 11 {
		return 0, false
	}
	code, err := strconv.Atoi(string(b[8:11]))
	return code, err == nil
}
