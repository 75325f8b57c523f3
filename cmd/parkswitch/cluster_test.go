package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/sip/siptest"
	"github.com/parkswitch/parkswitch/store/natsstore"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

// freeSIPPort returns a port of ip that was free over both UDP and TCP a
// moment ago, for a switch that must come back where its phones look.
func freeSIPPort(t testing.TB, ip string) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatalf("no port of %s free over UDP and TCP", ip)
	return 0
}

// sipListensAt is UDP and TCP on one address.
func sipListensAt(addr string) []config.Listen {
	return []config.Listen{{Network: "udp", Addr: addr}, {Network: "tcp", Addr: addr}}
}

// TestRestartKeepsRegistrations: phones registered with a switch that is
// shut down (they never unregister) are called through a new switch on
// the same data directory and port without registering again: over UDP at
// the address the REGISTER came from, over TCP on a new connection to the
// Contact, the old one having closed with the old process.
func TestRestartKeepsRegistrations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(freeSIPPort(t, "127.0.0.1"))
	setup := serverSetup{dataDir: t.TempDir(), nodeID: "restart-1", listens: sipListensAt(addr)}
	// Started before the first switch, whose leak check must not count them.
	bob := newPhone(t, ctx, addr, "1002", "udp")
	carol := newPhone(t, ctx, addr, "1003", "tcp")
	bob.AutoAnswer(true)
	carol.AutoAnswer(true)

	first := startServerWith(t, setup)
	for _, p := range []*siptest.Phone{bob, carol} {
		if err := p.Register(ctx, 300); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	first.stop()

	second := startServerWith(t, setup)
	regs := map[string]string{}
	for _, b := range second.sw.Registrations() {
		regs[b.User] = b.Node + " " + b.Source
	}
	if want := "restart-1 " + bob.Addr().String(); regs["1002"] != want {
		t.Errorf("1002 after restart: %q, want %q", regs["1002"], want)
	}
	if !strings.HasPrefix(regs["1003"], "restart-1 ") {
		t.Errorf("1003 after restart: %q", regs["1003"])
	}
	alice := phone(t, ctx, second, "1001", "udp")
	for user, callee := range map[string]*siptest.Phone{"1002": bob, "1003": carol} {
		ac, err := alice.Dial(ctx, user)
		if err != nil {
			t.Fatalf("call %s after restart: %v", user, err)
		}
		var cc *siptest.Call
		select {
		case cc = <-callee.Answered():
		case <-ctx.Done():
			t.Fatal("callee did not answer")
		}
		talk(t, ctx, ac, cc, 50)
		hangUp(t, ctx, ac, cc, "callee")
	}
}

// TestBinaryKilledKeepsRegistrations: the real binary killed with
// SIGKILL (no shutdown, the embedded store stopped mid-write) and started
// again on the same data directory and port reaches a phone registered
// with the first process.
func TestBinaryKilledKeepsRegistrations(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	sipAddr := "127.0.0.1:" + strconv.Itoa(freeSIPPort(t, "127.0.0.1"))
	httpAddr := "127.0.0.1:" + strconv.Itoa(freeSIPPort(t, "127.0.0.1"))
	writeFile(t, filepath.Join(dir, "parkswitch.yaml"), "server:\n  domain: contoso.com\n"+
		"  sip_listen: [\"udp://"+sipAddr+"\"]\n  http_listen: \""+httpAddr+"\"\n"+
		"media:\n  rtp_port_min: 22000\n  rtp_port_max: 22199\n"+
		"state:\n  node_id: killed\n"+
		"users:\n  - id: 1001@contoso.com\n    password: demo1001\n  - id: 1002@contoso.com\n    password: demo1002\n")
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	serve := func() (*exec.Cmd, *syncBuffer) {
		cmd := exec.CommandContext(ctx, bin, "serve", "--config", filepath.Join(dir, "parkswitch.yaml"))
		logs := startBinary(t, cmd)
		waitUntil(t, 15*time.Second, "/healthz", func() bool {
			res, err := http.Get("http://" + httpAddr + "/healthz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		})
		return cmd, logs
	}

	first, logs := serve()
	bob := newPhone(t, ctx, sipAddr, "1002", "udp")
	bob.AutoAnswer(true)
	if err := bob.Register(ctx, 300); err != nil {
		t.Fatalf("register: %v\n%s", err, logs.String())
	}
	first.Process.Kill()
	first.Wait()

	second, logs := serve()
	alice := newPhone(t, ctx, sipAddr, "1001", "udp")
	if err := alice.Register(ctx, 300); err != nil {
		t.Fatal(err)
	}
	ac, err := alice.Dial(ctx, "1002")
	if err != nil {
		t.Fatalf("call after kill -9: %v\n%s", err, logs.String())
	}
	talk(t, ctx, ac, <-bob.Answered(), 50)
	if err := ac.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
}

// TestCluster runs two switches on one NATS cluster, on 127.0.0.1 (a) and
// 127.0.0.2 (b): a phone on a calls a user registered on b with audio both
// ways through both relays; a second phone of that user registering on a
// is seen from b, and a call from b rings both; b trusts a's INVITEs, and
// no one else's for wearing the node marker.
func TestCluster(t *testing.T) {
	urls := natsCluster(t)
	a := startServerWith(t, serverSetup{nodeID: "a", natsURLs: urls, listens: sipListensAt("127.0.0.1:0")})
	b := startServerWith(t, serverSetup{nodeID: "b", natsURLs: urls, listens: sipListensAt("127.0.0.2:0")})
	waitUntil(t, 5*time.Second, "each node to see the other", func() bool {
		return a.sw.Peers()["b"] == b.udpAddr() && b.sw.Peers()["a"] == a.udpAddr()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	carolB := phone(t, ctx, b, "1003", "udp")
	alice := phone(t, ctx, a, "1001", "udp")

	t.Run("a phone on a calls a user on b", func(t *testing.T) {
		carolB.AutoAnswer(true)
		defer carolB.AutoAnswer(false)
		start := time.Now()
		ac, err := alice.Dial(ctx, "3003")
		if err != nil {
			t.Fatalf("call across nodes: %v", err)
		}
		t.Logf("call set up across nodes in %v (INVITE, 407, INVITE again, 200)", time.Since(start).Round(time.Microsecond))
		cc := <-carolB.Answered()
		if a.sw.ActiveCalls() != 1 || b.sw.ActiveCalls() != 1 {
			t.Errorf("calls: %d on a, %d on b; want one on each", a.sw.ActiveCalls(), b.sw.ActiveCalls())
		}
		talkVia(t, ctx, ac, cc, 50, "127.0.0.1", "127.0.0.2")
		hangUp(t, ctx, ac, cc, "callee on b")
	})

	carolA := phone(t, ctx, a, "1003", "udp")
	t.Run("a REGISTER on a is seen from b", func(t *testing.T) {
		nodes := map[string]string{}
		for _, r := range registrationsJSON(t, b) {
			if r.User == "1003" {
				nodes[r.Source] = r.Node
			}
		}
		if nodes[carolA.Addr().String()] != "a" || nodes[carolB.Addr().String()] != "b" {
			t.Errorf("b lists 1003 at %v; want %s on a and %s on b", nodes, carolA.Addr(), carolB.Addr())
		}
		bob := phone(t, ctx, b, "1002", "udp")
		bc, err := bob.DialAsync(ctx, "1003")
		if err != nil {
			t.Fatal(err)
		}
		onB, onA := nextIncoming(t, ctx, carolB), nextIncoming(t, ctx, carolA)
		cc, err := onA.Answer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := bc.Wait(ctx); err != nil {
			t.Fatalf("call from b answered on a: %v", err)
		}
		select {
		case <-onB.Canceled():
		case <-time.After(5 * time.Second):
			t.Error("the phone on b was not cancelled when the one on a answered")
		}
		talkVia(t, ctx, bc, cc, 50, "127.0.0.2", "127.0.0.1")
		hangUp(t, ctx, cc, bc, "caller on b")
	})

	t.Run("the node marker from elsewhere is not trusted", func(t *testing.T) { markerUntrusted(t, b, carolB) })
}

// markerUntrusted sends b INVITEs marked as from node a, from a's IP but
// not a's port and from an address no node has: each is challenged, and
// the phone on b does not ring.
func markerUntrusted(t *testing.T, b *testServer, phoneOnB *siptest.Phone) {
	for _, ip := range []string{"127.0.0.1", "127.0.0.3"} {
		if code := rawInvite(t, ip, b.udpAddr(), "X-Parkswitch-Node: a;user=1001\r\n"); code != 407 {
			t.Errorf("INVITE marked as from node a, sent from %s: %d, want 407", ip, code)
		}
	}
	select {
	case in := <-phoneOnB.Incoming():
		t.Errorf("an untrusted INVITE rang the phone: %v", in)
	case <-time.After(200 * time.Millisecond):
	}
}

// natsCluster starts a NATS cluster of three with the switch's buckets and
// streams made, so that the goroutines the servers run for them exist
// before any switch starts and do not count as its leaks.
func natsCluster(t *testing.T) []string { return natsClusterTB(t) }

func natsClusterTB(t testing.TB) []string {
	t.Helper()
	urls := natstest.URLs(natstest.StartCluster(t, 3))
	prepareNATS(t, urls)
	return urls
}

// prepareNATS makes the switch's buckets and streams on the servers at
// urls.
func prepareNATS(t testing.TB, urls []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := natsstore.Open(ctx, natsstore.Options{NodeID: "setup", URLs: urls})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// nextIncoming waits for the next call to ring p.
func nextIncoming(t *testing.T, ctx context.Context, p *siptest.Phone) *siptest.Incoming {
	t.Helper()
	select {
	case in := <-p.Incoming():
		return in
	case <-ctx.Done():
		t.Fatal("no incoming call")
	}
	return nil
}

type registrationEntry struct {
	User   string `json:"user"`
	Source string `json:"source"`
	Node   string `json:"node"`
}

// registrationsJSON reads GET /api/v1/registrations of ts.
func registrationsJSON(t *testing.T, ts *testServer) []registrationEntry {
	t.Helper()
	res, err := http.Get("http://" + ts.httpAddr() + "/api/v1/registrations")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out []registrationEntry
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("registrations: %v\n%s", err, body)
	}
	return out
}

// rawInvite sends a hand-written INVITE from ip to 1003 at dst with extra
// headers and returns the final status.
func rawInvite(t *testing.T, ip, dst, extra string) int {
	t.Helper()
	conn, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	sdp := "v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	callID := "hop-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := "INVITE sip:1003@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + callID + ";rport\r\n" +
		"From: \"Alice\" <sip:1001@contoso.com>;tag=h1\r\nTo: <sip:1003@contoso.com>\r\nCall-ID: " + callID + "\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:1001@" + local + ">\r\n" + extra + "Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: " + itoa(len(sdp)) + "\r\n\r\n" + sdp
	if _, err := conn.WriteTo([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	deadline := time.Now().Add(3 * time.Second)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no final answer to the INVITE from %s", ip)
		}
		if code, ok := statusOf(buf[:n]); ok && code >= 200 && callIDOf(buf[:n]) == callID {
			return code
		}
	}
}

// TestRegisterDuringStoreOutage: with the store down, phones still
// register and call on this node, the failure is logged once, and the
// bindings are written to the store once it is back, without the phones
// registering again.
func TestRegisterDuringStoreOutage(t *testing.T) {
	nats := natstest.StartServer(t, "outage")
	prepareNATS(t, []string{nats.URL()})
	logs := new(syncBuffer)
	ts := startServerWith(t, serverSetup{nodeID: "solo", natsURLs: []string{nats.URL()}, logTo: logs})
	// Before the switch's cleanup: the server started again below is the
	// test's, not a leak of the switch.
	t.Cleanup(nats.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	nats.Stop()
	start := time.Now()
	bob := phone(t, ctx, ts, "1002", "udp")
	t.Logf("REGISTER with the store down answered in %v", time.Since(start).Round(time.Millisecond))
	alice := phone(t, ctx, ts, "1001", "udp")
	bob.AutoAnswer(true)
	ac, err := alice.Dial(ctx, "1002")
	if err != nil {
		t.Fatalf("call with the store down: %v", err)
	}
	talk(t, ctx, ac, <-bob.Answered(), 50)
	if err := ac.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(ts.sw.Registrations()); n != 2 {
		t.Errorf("%d registrations listed with the store down, want this node's 2", n)
	}
	if n := strings.Count(logs.String(), "registration kept on this node only"); n != 1 {
		t.Errorf("the registrations kept locally were logged %d times, want once:\n%s", n, logs.String())
	}

	nats.Start()
	waitUntil(t, 10*time.Second, "the bindings to reach the store", func() bool {
		bs, err := ts.state.Bindings(ctx, "1002")
		return err == nil && len(bs) == 1 && bs[0].Node == "solo" && bs[0].Source == bob.Addr().String()
	})
}
