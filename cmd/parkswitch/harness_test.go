package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/sip"
)

// testDomain is the SIP domain of every test configuration.
const testDomain = "contoso.com"

// baseConfig is a test configuration: demo-like users, a park policy, and
// extra YAML appended by the test (users with static contacts, trunks).
const baseConfig = `
server:
  domain: contoso.com
media:
  rtp_port_min: %d
  rtp_port_max: %d
  rtp_timeout_seconds: 0
park:
  policy_file: policies.yaml
users:
  - id: 1001@contoso.com
    display_name: Alice Reception
    password: demo1001
    groups: [staff]
  - id: 1002@contoso.com
    display_name: Bob Sales
    password: demo1002
    groups: [staff]
  - id: 1003@contoso.com
    display_name: Carol Support
    password: demo1003
    extension: "3003"
    groups: [staff]
  - id: 1004@contoso.com
    display_name: Dave Warehouse
    password: demo1004
  - id: 1005@contoso.com
    display_name: Erin Sales
    password: demo1005
    groups: [sales]
  - id: 1006@contoso.com
    display_name: Frank Sales
    password: demo1006
    groups: [sales]
`

const basePolicies = `
policies:
  - identity: Global
  - identity: DemoPark
    allow_call_park: true
  - identity: SalesPolicy
    allow_call_park: true
    pickup_range_start: 500
    pickup_range_end: 501
assignments:
  groups:
    - group: staff
      policy: DemoPark
      rank: 1
    - group: sales
      policy: SalesPolicy
      rank: 2
`

// testServer is a running in-process switch bound to ephemeral ports.
type testServer struct {
	*server
	t    testing.TB
	stop func() // checks for leaks and shuts down, once; the test's cleanup calls it too
}

// udpAddr and tcpAddr are where the switch listens.
func (ts *testServer) udpAddr() string { return ts.sw.Addr("udp").String() }
func (ts *testServer) tcpAddr() string { return ts.sw.Addr("tcp").String() }

// rtpRange hands each test server its own RTP ports below the kernel's
// ephemeral range (32768 and up), where the peers' sockets live.
var rtpRange = struct{ next int }{next: 24000}

// startServer loads yaml (with the policies) through the real config loader
// and runs the switch on 127.0.0.1 with ephemeral SIP and HTTP ports. When the
// test ends it shuts down and checks that no call, dialog or port is left.
func startServer(t testing.TB, extraYAML string, tune func(*sip.Options)) *testServer {
	t.Helper()
	return startServerWith(t, serverSetup{extraYAML: extraYAML, tune: tune})
}

// serverSetup is what a test may change in startServerWith.
type serverSetup struct {
	extraYAML  string            // appended to the configuration
	serverYAML string            // lines added to its server: section
	parkYAML   string            // lines added to its park: section
	files      map[string]string // more files beside the configuration
	listens    []config.Listen   // default: UDP and TCP on 127.0.0.1:0
	tune       func(*sip.Options)
	logTo      io.Writer     // the switch's log, instead of the test's
	heartbeat  time.Duration // of the event stream, instead of 15 s

	// The state section; by default the embedded store on a data
	// directory of the test's own, named after the host.
	dataDir  string   // state.data_dir
	nodeID   string   // state.node_id
	natsURLs []string // state.nats_urls
}

// stateYAML is the state section setup asks for, "" for the default.
func (setup serverSetup) stateYAML() string {
	if setup.dataDir == "" && setup.nodeID == "" && len(setup.natsURLs) == 0 {
		return ""
	}
	y := "state:\n"
	if setup.dataDir != "" {
		y += "  data_dir: " + strconv.Quote(setup.dataDir) + "\n"
	}
	if setup.nodeID != "" {
		y += "  node_id: " + setup.nodeID + "\n"
	}
	if len(setup.natsURLs) > 0 {
		y += "  nats_urls: [\"" + strings.Join(setup.natsURLs, "\", \"") + "\"]\n"
	}
	return y
}

func startServerWith(t testing.TB, setup serverSetup) *testServer {
	t.Helper()
	extraYAML, tune := setup.extraYAML, setup.tune
	before := goleak.IgnoreCurrent()
	lo, hi := rtpRange.next, rtpRange.next+199
	rtpRange.next += 200
	if rtpRange.next > 32000 {
		rtpRange.next = 24000
	}
	dir := t.TempDir()
	main := strings.Replace(strings.Replace(baseConfig, "%d", strconv.Itoa(lo), 1), "%d", strconv.Itoa(hi), 1) + extraYAML
	main = strings.Replace(main, "  domain: contoso.com\n", "  domain: contoso.com\n"+setup.serverYAML, 1) + setup.stateYAML()
	main = strings.Replace(main, "park:\n", "park:\n"+setup.parkYAML, 1)
	writeFile(t, dir+"/parkswitch.yaml", main)
	writeFile(t, dir+"/policies.yaml", basePolicies)
	for name, data := range setup.files {
		writeFile(t, dir+"/"+name, data)
	}
	listens := setup.listens
	if listens == nil {
		listens = []config.Listen{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}}
	}
	cfg, err := config.Load(dir + "/parkswitch.yaml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	if testing.Verbose() || os.Getenv("PARKSWITCH_TEST_LOG") != "" {
		log = log.Level(zerolog.DebugLevel)
	}
	if setup.logTo != nil {
		log = zerolog.New(setup.logTo).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	srv, err := newServer(cfg, log, serverOptions{
		sipListen:  listens,
		httpListen: "127.0.0.1:0",
		heartbeat:  setup.heartbeat,
		tune:       tune,
	})
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	if err := srv.start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	ts := &testServer{server: srv, t: t}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Every call must be over before shutdown: shutdown would hide a
			// leak by hanging calls up itself.
			waitUntil(t, 5*time.Second, "calls to end", func() bool { return srv.sw.ActiveCalls() == 0 })
			waitUntil(t, 5*time.Second, "dialogs to be released", func() bool { return srv.sw.Dialogs() == 0 })
			waitUntil(t, 5*time.Second, "RTP ports to be released", func() bool { return srv.ports.InUse() == 0 })
			if err := srv.shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			// Phones were closed before this cleanup (cleanups run last-in
			// first-out), or started before the server, so whatever runs
			// now was left behind by the switch or the test.
			// The music's fan-out helpers start a moment after Start, so
			// those of a switch started just before this one can postdate
			// before; they cannot outlive their Run, which is checked.
			verifyNoLeaks(t, len(setup.natsURLs) > 0, before, goleak.IgnoreAnyFunction("github.com/parkswitch/parkswitch/media.(*pacer).startFanout.func1"))
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// verifyNoLeaks is goleak.VerifyNone, except that with external NATS
// servers (run by the test in this process) the goroutines those servers
// start, as their streams grow and consumers come and go, are theirs and
// not the switch's. Its own NATS client is checked like the rest.
func verifyNoLeaks(t testing.TB, external bool, opts ...goleak.Option) {
	t.Helper()
	if !external {
		goleak.VerifyNone(t, opts...)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		var ours []string
		report := err.Error()
		at := goroutineDump.FindAllStringIndex(report, -1)
		for i, m := range at {
			end := len(report)
			if i+1 < len(at) {
				end = at[i+1][0]
			}
			if g := report[m[0]:end]; !strings.Contains(g, "created by github.com/nats-io/nats-server/v2/server.") {
				ours = append(ours, g)
			}
		}
		if len(ours) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("found unexpected goroutines:\n%s", strings.Join(ours, "\n"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// goroutineDump splits goleak's report into its goroutines.
var goroutineDump = regexp.MustCompile(`Goroutine \d+ in state`)

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond (bounded) and fails the test with what it waited for.
func waitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s", limit, what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestMain(m *testing.M) {
	// The SIP stack logs process-wide; keep its warnings, on stderr.
	sip.SetStackLogger(zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	os.Exit(m.Run())
}

// portBlocks hands out blocks of consecutive ports of [lo, hi), round
// robin, that nothing holds on 127.0.0.1: the external phones of the
// interop tests need fixed ports, away from the switch's RTP ranges
// (rtpRange) and the kernel's ephemeral range.
type portBlocks struct {
	mu           sync.Mutex
	lo, hi, size int
	next         int
}

// take returns the first port of a free block; every port of it is free
// for each of networks ("udp", "tcp").
func (b *portBlocks) take(t testing.TB, networks ...string) int {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for range (b.hi - b.lo) / b.size {
		if b.next < b.lo || b.next+b.size > b.hi {
			b.next = b.lo
		}
		start := b.next
		b.next += b.size
		free := true
		for p := start; p < start+b.size && free; p++ {
			for _, n := range networks {
				free = free && bindable(n, p)
			}
		}
		if free {
			return start
		}
	}
	t.Fatalf("no free block of %d ports in %d–%d", b.size, b.lo, b.hi-1)
	return 0
}

// bindable reports whether nothing holds port of 127.0.0.1 over network.
func bindable(network string, port int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if network == "udp" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		pc.Close()
		return true
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// syncBuffer is a bytes.Buffer that a logger or a child process writes to
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// syncBufferKeep is how much of a long run's output a syncBuffer keeps:
// the latest 16 MiB. A soak's hour of logs would otherwise grow the test's
// heap by gigabytes, each doubling of the buffer stalling the pipe.
const syncBufferKeep = 16 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > 2*syncBufferKeep {
		tail := b.buf.Bytes()[b.buf.Len()-syncBufferKeep:]
		b.buf.Reset()
		b.buf.Write(tail) // Reset keeps the storage; tail moves to its front
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
