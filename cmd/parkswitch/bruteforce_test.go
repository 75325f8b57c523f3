package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// requireSipvicious skips without Debian's sipvicious, unless the run
// demands it (make test).
func requireSipvicious(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"svcrack", "svwar"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("PARKSWITCH_REQUIRE_SIPVICIOUS") != "" {
				t.Fatalf("%s is required (apt-get install sipvicious)", tool)
			}
			t.Skip("sipvicious not installed")
		}
	}
}

// sipvicious runs one sipvicious tool against the switch's UDP port from
// 127.0.0.1, bounded, and returns its output.
func sipvicious(t *testing.T, ts *testServer, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append(args, "-b", "127.0.0.1", "-P", strconv.Itoa(freeUDPPort(t)),
		"-p", strconv.Itoa(int(ts.sw.Addr("udp").Port())), "--maximumtime", "2", "127.0.0.1")
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type banJSON struct {
	IP       string    `json:"ip"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"`
}

func getBans(t *testing.T, ts *testServer) []banJSON {
	t.Helper()
	var out []banJSON
	getJSON(t, "http://"+ts.httpAddr()+"/api/v1/bans", &out)
	return out
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// unbanConfig writes a configuration for the CLI whose http_listen is the
// test server's admin address, as an operator's file would name it.
func unbanConfig(t *testing.T, ts *testServer) string {
	t.Helper()
	data, err := os.ReadFile(ts.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	main := strings.Replace(string(data), "  domain: contoso.com\n", "  domain: contoso.com\n  http_listen: "+ts.httpAddr()+"\n", 1)
	writeFile(t, filepath.Join(dir, "parkswitch.yaml"), main)
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	return filepath.Join(dir, "parkswitch.yaml")
}

// TestSipviciousScanAndCrack points Debian's sipvicious at the switch as a
// scanner on the internet would. svwar enumerating extensions learns
// nothing: known and unknown users are answered alike. svcrack guessing
// 1001's password, with the right one 51st in its list, is banned after
// ban_after wrong guesses and never finds it; the right password from that
// source is then ignored, the user's binding stays as it was, and
// `parkswitch unban` lifts the ban.
func TestSipviciousScanAndCrack(t *testing.T) {
	requireSipvicious(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")

	for _, args := range [][]string{
		{"--force", "-m", "REGISTER"}, {"--force", "-m", "INVITE"}, {"--force", "-m", "OPTIONS"}, {"-m", "REGISTER"},
	} {
		out := sipvicious(t, ts, "svwar", append(args, "-e", "1000-1010")...)
		if strings.Contains(out, "exists") || !strings.Contains(out, "found nothing") {
			t.Errorf("svwar %s told extensions apart:\n%s", strings.Join(args, " "), out)
		}
	}
	if bans := getBans(t, ts); len(bans) != 0 {
		t.Fatalf("enumeration without credentials banned: %+v", bans)
	}

	dir := t.TempDir()
	var words []string
	for i := range 50 {
		words = append(words, "guess"+strconv.Itoa(i))
	}
	words = append(words, "demo1001", "later1", "later2")
	writeFile(t, filepath.Join(dir, "words.txt"), strings.Join(words, "\n")+"\n")
	start := time.Now()
	out := sipvicious(t, ts, "svcrack", "-u", "1001", "-d", filepath.Join(dir, "words.txt"), "-vv")
	attempts := len(regexp.MustCompile(`(?m)trying \S+$`).FindAllString(out, -1))
	if strings.Contains(out, "The password for") || strings.Contains(out, "demo1001") || !strings.Contains(out, "found nothing") {
		t.Fatalf("svcrack cracked the password:\n%s", out)
	}

	bans := getBans(t, ts)
	if len(bans) != 1 || bans[0].IP != "127.0.0.1" || bans[0].Failures != 10 ||
		bans[0].Until.Sub(bans[0].Since) != 600*time.Second {
		t.Fatalf("bans = %+v, want 127.0.0.1 banned for 600 s after 10 failures", bans)
	}
	t.Logf("svcrack: %d guesses sent, %d judged before the ban (in %v), the rest ignored; %d s ban",
		attempts, bans[0].Failures, bans[0].Since.Sub(start).Round(time.Millisecond), int(bans[0].Until.Sub(bans[0].Since).Seconds()))
	if attempts > bans[0].Failures+1 {
		t.Errorf("svcrack sent %d guesses: it kept being answered after the ban", attempts)
	}
	if m := getText(t, "http://"+ts.httpAddr()+"/metrics"); !strings.Contains(m, "parkswitch_bans_total 1\n") {
		t.Errorf("metrics do not count the ban:\n%s", grepLines(m, "bans"))
	}

	// The right password from the banned source: no answer at all, and
	// the binding of the real phone stays.
	crackerPhone, err := siptest.NewPhone(ctx, siptest.Config{
		User: "1001", Password: "demo1001", Domain: testDomain, Server: ts.udpAddr(),
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer crackerPhone.Close()
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	err = crackerPhone.Register(rctx, 300)
	rcancel()
	if err == nil || siptest.StatusCode(err) != 0 {
		t.Fatalf("REGISTER from a banned source with the right password: %v, want no answer", err)
	}
	regs := ts.sw.Registrations()
	if len(regs) != 1 || regs[0].Contact.String() != alice.Contact() {
		t.Fatalf("bindings after the attack = %+v, want only %s", regs, alice.Contact())
	}

	// parkswitch unban, through the admin API named by the configuration.
	cfg := unbanConfig(t, ts)
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"unban", "--config", cfg, "127.0.0.1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("unban exited %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "127.0.0.1") {
		t.Errorf("unban printed %q", stdout.String())
	}
	if bans := getBans(t, ts); len(bans) != 0 {
		t.Errorf("bans after unban = %+v", bans)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"unban", "--config", cfg, "127.0.0.1"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "not banned") {
		t.Errorf("second unban: exit %d, %q; want 0 and not banned", code, stdout.String())
	}
	stderr.Reset()
	if code := run(ctx, []string{"unban", "--confg", cfg, "127.0.0.1"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "did you mean --config") {
		t.Errorf("mistyped flag: exit %d, %q; want 2 and a hint", code, stderr.String())
	}
	if err := crackerPhone.Register(ctx, 300); err != nil {
		t.Fatalf("REGISTER after the ban was lifted: %v", err)
	}
	if err := crackerPhone.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRetrieveMissThrottleEndToEnd dials empty park codes as a code
// scanner would: the first ten get 404, then the user's retrieves are
// refused with 403 while another user's still get 404.
func TestRetrieveMissThrottleEndToEnd(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	for i := range 10 {
		if _, err := bob.Dial(ctx, strconv.Itoa(20+i)); siptest.StatusCode(err) != 404 {
			t.Fatalf("empty code %d: %v, want 404", 20+i, err)
		}
	}
	for _, code := range []string{"30", "10"} {
		if _, err := bob.Dial(ctx, code); siptest.StatusCode(err) != 403 {
			t.Errorf("retrieve %s after ten misses: %v, want 403", code, err)
		}
	}
	if _, err := carol.Dial(ctx, "31"); siptest.StatusCode(err) != 404 {
		t.Errorf("another user's retrieve: %v, want 404", err)
	}
	if bans := getBans(t, ts); len(bans) != 0 {
		t.Errorf("retrieve misses banned the source: %+v", bans)
	}
}

// challengeAlgorithms sends an unauthenticated REGISTER for user and
// returns the algorithms of the 401's challenges, in order.
func challengeAlgorithms(t *testing.T, ts *testServer, conn net.PacketConn, user, userAgent string) []string {
	t.Helper()
	local := conn.LocalAddr().String()
	callID := "alg-" + user + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := "REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + callID + ";rport\r\n" +
		"From: <sip:" + user + "@contoso.com>;tag=a1\r\nTo: <sip:" + user + "@contoso.com>\r\nCall-ID: " + callID + "\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:" + user + "@" + local + ">\r\nUser-Agent: " + userAgent + "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	dst, _ := net.ResolveUDPAddr("udp", ts.udpAddr())
	if _, err := conn.WriteTo([]byte(msg), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	for {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no challenge for %s", user)
		}
		if callIDOf(buf[:n]) != callID {
			continue
		}
		if code, _ := statusOf(buf[:n]); code != 401 {
			t.Fatalf("REGISTER for %s answered %d, want 401", user, code)
		}
		var algs []string
		for _, m := range regexp.MustCompile(`(?m)^WWW-Authenticate: Digest .*algorithm=([A-Za-z0-9-]+)`).FindAllStringSubmatch(string(buf[:n]), -1) {
			algs = append(algs, m[1])
		}
		return algs
	}
}

// TestDigestPerUser checks that challenges offer what the user's stored
// secret can verify, that each such user registers, and that an unknown
// user is challenged exactly like one with a password.
func TestDigestPerUser(t *testing.T) {
	h := func(f func([]byte) []byte, user string) string {
		return hex.EncodeToString(f([]byte(user + ":" + testDomain + ":demo" + user)))
	}
	md := func(b []byte) []byte { s := md5.Sum(b); return s[:] }
	sha := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	ts := startServer(t, `  - id: 1011@contoso.com
    ha1: `+h(md, "1011")+`
  - id: 1012@contoso.com
    ha1_sha256: `+h(sha, "1012")+`
  - id: 1013@contoso.com
    ha1: `+h(md, "1013")+`
    ha1_sha256: `+h(sha, "1013")+`
`, nil)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tests := []struct {
		user, ua string
		want     string
	}{
		{"1001", "test", "MD5 SHA-256"},       // password: the configured set
		{"1011", "test", "MD5"},               // ha1
		{"1012", "test", "SHA-256"},           // ha1_sha256
		{"1013", "test", "MD5 SHA-256"},       // both
		{"9999", "test", "MD5 SHA-256"},       // unknown: like a password user
		{"1001", "baresip v1.0.0", "MD5"},     // baresip < 3.12 gives up on SHA-256
		{"1012", "baresip v1.0.0", "SHA-256"}, // …unless SHA-256 is all there is
	}
	for _, tc := range tests {
		if got := strings.Join(challengeAlgorithms(t, ts, conn, tc.user, tc.ua), " "); got != tc.want {
			t.Errorf("%s (%s) is offered %q, want %q", tc.user, tc.ua, got, tc.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []string{"1011", "1012", "1013"} {
		p := phone(t, ctx, ts, u, "udp")
		if err := p.Unregister(ctx); err != nil {
			t.Errorf("unregister %s: %v", u, err)
		}
	}
}

// TestForgedNonceIsNotJudged answers a challenge with a nonce the switch
// did not issue: right or wrong password, the answer is a fresh challenge,
// never 403, and nothing counts toward a ban.
func TestForgedNonceIsNotJudged(t *testing.T) {
	ts := startServer(t, "", nil)
	conn, dst := rawUDP(t, ts)
	local := conn.LocalAddr().String()
	buf := make([]byte, 8192)
	for i := range 15 { // more than ban_after
		callID := "forged-" + strconv.Itoa(i)
		auth := `Digest username="1001", realm="contoso.com", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:contoso.com", ` +
			`response="00000000000000000000000000000000", algorithm=MD5, qop=auth, nc=00000001, cnonce="x"`
		msg := "REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + callID + ";rport\r\n" +
			"From: <sip:1001@contoso.com>;tag=f1\r\nTo: <sip:1001@contoso.com>\r\nCall-ID: " + callID + "\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: <sip:1001@" + local + ">\r\nAuthorization: " + auth + "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
		if _, err := conn.WriteTo([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		for {
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				t.Fatalf("request %d: no answer", i)
			}
			if callIDOf(buf[:n]) != callID {
				continue
			}
			if code, _ := statusOf(buf[:n]); code != 401 || !bytes.Contains(buf[:n], []byte("stale=true")) {
				t.Fatalf("forged nonce answered %d, want 401 stale=true:\n%s", code, buf[:n])
			}
			break
		}
	}
	if bans := getBans(t, ts); len(bans) != 0 {
		t.Errorf("forged nonces counted toward a ban: %+v", bans)
	}
}
