package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/sipcheck"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// flood opens n TCP connections to addr from the loopback address src and
// sends each one payload (nothing when empty). They are closed when the
// test ends.
func flood(t *testing.T, src, addr string, n int, payload string) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s from %s: %v", addr, src, err)
		}
		conns = append(conns, c)
		if payload != "" {
			c.Write([]byte(payload))
		}
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

func metric(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	m := getText(t, "http://"+ts.httpAddr()+"/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	sub := re.FindStringSubmatch(m)
	if sub == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(sub[1], 64)
	return v
}

// TestConnectionLimits opens TCP and TLS connections past the total and
// per-IP caps: the excess is closed at once, registrations are served
// while the switch is at its cap, silent connections are reaped, and a
// source that holds its per-IP cap with idle, complete connections does
// not keep other phones from registering and calling over TCP and TLS.
func TestConnectionLimits(t *testing.T) {
	const maxConns, perIP = 120, 40
	ts := startTLSServer(t, serverSetup{
		extraYAML: fmt.Sprintf("security:\n  max_connections: %d\n  max_connections_per_ip: %d\n", maxConns, perIP),
		tune:      func(o *sip.Options) { o.IncompleteTimeout = 3 * time.Second },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	tcp, tlsAddr := ts.tcpAddr(), ts.sw.Addr("tls").String()

	// Silent connections from four sources, 50 each, TLS among them: 40
	// each of the first three get in, then the total cap is reached (the
	// cap in total is checked first).
	flood(t, "127.0.0.2", tcp, 50, "")
	flood(t, "127.0.0.3", tlsAddr, 50, "")
	flood(t, "127.0.0.4", tcp, 50, "")
	flood(t, "127.0.0.5", tcp, 50, "")
	waitUntil(t, 5*time.Second, "the switch to hold its cap", func() bool { return ts.sw.Connections() == maxConns })
	waitUntil(t, 5*time.Second, "refusals to be counted", func() bool {
		return metric(t, ts, `parkswitch_sip_connections_refused_total{limit="max_connections_per_ip"}`) == 20 &&
			metric(t, ts, `parkswitch_sip_connections_refused_total{limit="max_connections"}`) == 60
	})
	if got := metric(t, ts, "parkswitch_sip_connections"); got != maxConns {
		t.Errorf("parkswitch_sip_connections = %v at the cap, want %d", got, maxConns)
	}
	held := ts.sw.Connections()
	phone(t, ctx, ts, "1003", "udp") // registers while the cap is held
	t.Logf("%d connections held at the cap (%d per IP); a UDP registration was served", held, perIP)

	// None of them sent a message: cut after the incomplete-message timeout.
	waitUntil(t, 5*time.Second, "silent connections to be closed", func() bool { return ts.sw.Connections() == 0 })

	// One source holds its per-IP cap with connections that each sent a
	// complete OPTIONS and then idle: they are kept, and others still get in.
	options := "OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5999;branch=z9hG4bK%s\r\n" +
		"From: <sip:scan@127.0.0.2>;tag=1\r\nTo: <sip:contoso.com>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	var idle []net.Conn
	for i := range 50 {
		c, err := d.Dial("tcp", tcp)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		fmt.Fprintf(c, options, strconv.Itoa(i)+"x", "scan-"+strconv.Itoa(i))
	}
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	waitUntil(t, 5*time.Second, "the per-IP cap", func() bool { return ts.sw.Connections() == perIP })
	time.Sleep(3500 * time.Millisecond) // past the incomplete-message timeout
	if n := ts.sw.Connections(); n != perIP {
		t.Errorf("%d idle connections with complete messages kept, want %d", n, perIP)
	}
	alice := phone(t, ctx, ts, "1001", "tcp")
	bob := tlsPhone(t, ctx, ts, "1002", false)
	callee := make(chan *siptest.Call, 1)
	go func() { callee <- answerNext(t, ctx, bob) }()
	a, err := alice.Dial(ctx, "1002")
	if err != nil {
		t.Fatalf("TCP to TLS call with a source at its cap: %v", err)
	}
	b := <-callee
	if b == nil {
		t.FailNow()
	}
	talk(t, ctx, a, b, 30)
	hangUp(t, ctx, a, b, "callee")
	if got := ts.sw.Connections(); got != perIP+2 {
		t.Errorf("%d connections, want the %d idle ones and the two phones'", got, perIP)
	}
}

// TestBinarySurvivesEMFILE runs the real binary with few file descriptors
// (RLIMIT_NOFILE, soft and hard, so Go cannot raise it) and exhausts them
// with TCP connections: the listener reports itself down in /healthz
// while accept fails, and serves again once descriptors are free.
func TestBinarySurvivesEMFILE(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh to lower the descriptor limit")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	udpPort, httpPort := freeUDPPort(t), freeUDPPort(t)
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := tcpLn.Addr().(*net.TCPAddr).Port
	tcpLn.Close()
	cfg := "server:\n  domain: contoso.com\n" +
		fmt.Sprintf("  sip_listen: [\"udp://127.0.0.1:%d\", \"tcp://127.0.0.1:%d\"]\n", udpPort, tcpPort) +
		fmt.Sprintf("  http_listen: \"127.0.0.1:%d\"\n", httpPort) +
		"media:\n  rtp_port_min: 21000\n  rtp_port_max: 21999\n" +
		"security:\n  max_connections_per_ip: 1000\n" +
		"users:\n  - id: 1001@contoso.com\n    password: demo1001\n    groups: [staff]\n"
	writeFile(t, filepath.Join(dir, "parkswitch.yaml"), cfg)
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const nofile = 64
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("ulimit -n %d && exec \"$0\" serve --config \"$1\"", nofile), bin, filepath.Join(dir, "parkswitch.yaml"))
	logs := startBinary(t, cmd)
	// One kept-alive HTTP connection: during the exhaustion a new one
	// could not be accepted either.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	health := func() int {
		res, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	waitUntil(t, 15*time.Second, "/healthz 200", func() bool { return health() == 200 })

	conns := flood(t, "127.0.0.2", "127.0.0.1:"+strconv.Itoa(tcpPort), nofile+20, "")
	waitUntil(t, 10*time.Second, "/healthz 503 while descriptors are exhausted", func() bool { return health() == 503 })
	// The log writer gathers lines for a few milliseconds before it writes.
	waitUntil(t, 5*time.Second, "EMFILE in the log", func() bool { return strings.Contains(logs.String(), "too many open files") })
	if !strings.Contains(logs.String(), "too many open files") {
		t.Logf("log:\n%s", head(logs.String(), 3000))
	}
	for _, c := range conns {
		c.Close()
	}
	waitUntil(t, 15*time.Second, "/healthz 200 again", func() bool { return health() == 200 })

	p, err := siptest.NewPhone(ctx, siptest.Config{User: "1001", Password: "demo1001", Domain: testDomain,
		Server: "127.0.0.1:" + strconv.Itoa(tcpPort), Transport: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Register(ctx, 120); err != nil {
		t.Fatalf("register over TCP after EMFILE: %v\n%s", err, head(logs.String(), 3000))
	}
	if t.Failed() {
		t.Logf("binary log:\n%s", head(logs.String(), 5000))
	}
}

// countWriter counts bytes and lines written.
type countWriter struct {
	mu           sync.Mutex
	bytes, lines int
	keep         bytes.Buffer // the first 64 KiB, to look into
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes += len(p)
	w.lines += bytes.Count(p, []byte{'\n'})
	if w.keep.Len() < 64<<10 {
		w.keep.Write(p)
	}
	return len(p), nil
}

func (w *countWriter) counts() (int, int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes, w.lines, w.keep.String()
}

// garbage is what the log test sends: 30 KB datagrams, half of them a
// request with credentials and a broken header, half no SIP at all.
func garbage(i int) []byte {
	const size = 30000
	var b []byte
	if i%2 == 0 {
		b = []byte("INVITE sip:1002@contoso.com SIP/2.0\r\nAuthorization: Digest username=\"1001\", realm=\"contoso.com\", nonce=\"abc\", response=\"feedfacefeedfacefeedfacefeedface\"\r\nthis line has no colon ")
	}
	pad := make([]byte, size-len(b))
	rand.Read(pad)
	for j := range pad {
		pad[j] = 'a' + pad[j]%26
	}
	return append(b, pad...)
}

// sendGarbage sends n garbage datagrams to addr, then an OPTIONS, and
// waits for its answer: the reader has then been through the garbage.
func sendGarbage(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		c.Write(garbage(i))
		if i%64 == 63 {
			time.Sleep(2 * time.Millisecond) // stay within the socket buffer
		}
	}
	local := c.LocalAddr().String()
	fmt.Fprintf(c, "OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKend\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\n"+
		"To: <sip:contoso.com>\r\nCall-ID: garbage-end\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", local)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 4096)); err != nil {
		t.Fatalf("no answer to OPTIONS after the garbage: %v", err)
	}
}

func garbageCount() int {
	if n, err := strconv.Atoi(os.Getenv("PARKSWITCH_GARBAGE_DATAGRAMS")); err == nil && n > 0 {
		return n
	}
	return 2000
}

// TestGarbageLogBytes sends garbage datagrams to the switch and measures
// the log they cause, against sipgo on its own (what the switch wrote
// before its log was bounded). PARKSWITCH_GARBAGE_DATAGRAMS=20000 gives
// the figure in the README.
func TestGarbageLogBytes(t *testing.T) {
	n := garbageCount()

	// sipgo alone, logging as the switch used to: every record as it is.
	var raw countWriter
	rawLog := slog.New(zerolog.NewSlogHandler(zerolog.New(&raw).Level(zerolog.WarnLevel)))
	ua, err := sipgo.NewUA(sipgo.WithUserAgentParser(sipcheck.NewParser()),
		sipgo.WithUserAgentTransportLayerOptions(sipgosip.WithTransportLayerLogger(rawLog)),
		sipgo.WithUserAgentTransactionLayerOptions(sipgosip.WithTransactionLayerLogger(rawLog)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(rawLog))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnOptions(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		tx.Respond(sipgosip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.ServeUDP(pc) }()
	sendGarbage(t, pc.LocalAddr().String(), n)
	pc.Close()
	<-served
	ua.Close()
	rawBytes, rawLines, _ := raw.counts()

	// The switch.
	var bounded countWriter
	ts := startServerWith(t, serverSetup{logTo: &bounded})
	start := time.Now()
	sendGarbage(t, ts.udpAddr(), n)
	elapsed := time.Since(start)
	ts.sw.Shutdown(context.Background()) // flushes nothing new; ends the window
	gotBytes, gotLines, text := bounded.counts()

	t.Logf("%d garbage datagrams of 30 KB: sipgo alone logged %d lines, %d bytes (%.0f B/datagram); the switch %d lines, %d bytes (%.1f B/datagram) in %v",
		n, rawLines, rawBytes, float64(rawBytes)/float64(n), gotLines, gotBytes, float64(gotBytes)/float64(n), elapsed.Round(time.Millisecond))
	if rawLines < n/2 {
		t.Errorf("sipgo alone logged %d lines for %d datagrams: the measurement is off", rawLines, n)
	}
	// 10 lines a second, and a few lines of start and stop.
	if limit := 10*(int(elapsed/time.Second)+2) + 10; gotLines > limit {
		t.Errorf("the switch logged %d lines in %v, want at most %d", gotLines, elapsed, limit)
	}
	if strings.Contains(text, "feedface") || strings.Contains(text, `username=\"1001\"`) {
		t.Errorf("credentials in the log:\n%s", head(text, 2000))
	}
	if !strings.Contains(text, "<redacted>") {
		t.Errorf("no redacted line in the log:\n%s", head(text, 2000))
	}
	for _, line := range strings.Split(text, "\n") {
		if len(line) > 2000 {
			t.Errorf("a %d-byte log line: %.300s…", len(line), line)
			break
		}
	}
}
