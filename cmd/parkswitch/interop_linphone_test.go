package main

// Interop with a real Linphone: linphonec (Debian package linphone-cli),
// driven over stdin, registers with the in-process switch (digest, MD5 or
// SHA-256), calls and is called by siptest phones, parks a call with a blind
// transfer (REFER) to the park address as a softphone user does, and is
// itself parked and retrieved.
//
// linphonec runs headless: its own HOME and linphonerc in the test's
// temporary directory (testdata/interop/linphone/linphonerc.tmpl), SIP and
// RTP bound to 127.0.0.1, "soundcard use files" with a generated tone as the
// microphone. Its console output (call, transfer and chat events) is parsed
// to follow the call; its log (-d 6) holds the SIP messages and the RTP
// statistics of each call and is attached when a test fails.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// requireLinphone returns the paths of linphonec and stdbuf, or skips the
// test when they are missing, unless PARKSWITCH_REQUIRE_INTEROP is set.
func requireLinphone(t *testing.T) (linphonec, stdbuf string) {
	t.Helper()
	var missing []string
	linphonec, err := exec.LookPath("linphonec")
	if err != nil {
		missing = append(missing, "linphonec (apt-get install linphone-cli)")
	}
	// linphonec writes its console through stdio: on a pipe it is block
	// buffered unless stdbuf makes it line buffered.
	stdbuf, err = exec.LookPath("stdbuf")
	if err != nil {
		missing = append(missing, "stdbuf (coreutils)")
	}
	if len(missing) > 0 {
		if os.Getenv("PARKSWITCH_REQUIRE_INTEROP") != "" {
			t.Fatalf("the Linphone interop tests need %s", strings.Join(missing, " and "))
		}
		t.Skipf("not installed: %s", strings.Join(missing, ", "))
	}
	return linphonec, stdbuf
}

// Ports of the Linphone phones, apart from the other interop peers
// (21000–23999): SIP on 20000–20998; RTP in slices of 40 (20 audio, 20
// video) in 16000–19999.
var (
	linphoneSIPPorts = &portBlocks{lo: 20000, hi: 21000, size: 2}
	linphoneRTPPorts = &portBlocks{lo: 16000, hi: 20000, size: linphoneRTPSlice}
)

const linphoneRTPSlice = 40

// allocLinphonePorts returns a free SIP port and the first port of a free
// RTP slice.
func allocLinphonePorts(t *testing.T) (sipPort, rtpLo int) {
	t.Helper()
	return linphoneSIPPorts.take(t, "udp"), linphoneRTPPorts.take(t, "udp")
}

// linphoneLine is one line of linphonec's console, prompts removed.
type linphoneLine struct {
	at   time.Duration // since start
	text string
}

// linphonePhone is one linphonec process registered as user.
type linphonePhone struct {
	user    string
	dir     string
	sipPort int
	audioLo int // audio RTP ports audioLo..audioLo+19
	logPath string
	errPath string
	start   time.Time

	cmd      *exec.Cmd
	stdin    io.WriteCloser
	exited   chan struct{}
	readDone chan struct{}

	mu      sync.Mutex
	lines   []linphoneLine
	changed chan struct{} // closed and replaced on every new line
}

// linphoneOptions are per-phone settings.
type linphoneOptions struct {
	autoAnswer bool // linphonec -a: answer every incoming call at once
}

// startLinphone starts linphonec for user (password demo<user>) with the
// switch as registrar and outbound proxy, and waits until the switch holds
// its registration.
func startLinphone(t *testing.T, ts *testServer, user string, opt linphoneOptions) *linphonePhone {
	t.Helper()
	bin, stdbuf := requireLinphone(t)
	sipPort, rtpLo := allocLinphonePorts(t)
	dir := filepath.Join(t.TempDir(), "linphone-"+user)
	// liblinphone keeps its database in $HOME/.local/share/linphone and,
	// when it cannot create it there, never leaves LinphoneGlobalStartup:
	// no SIP socket, every request fails with "no channel available".
	if err := os.MkdirAll(filepath.Join(dir, ".local", "share", "linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := &linphonePhone{
		user: user, dir: dir, sipPort: sipPort, audioLo: rtpLo,
		logPath: filepath.Join(dir, "linphone.log"), errPath: filepath.Join(dir, "stderr.log"),
		exited: make(chan struct{}), readDone: make(chan struct{}), changed: make(chan struct{}),
	}
	writeLinphoneRC(t, filepath.Join(dir, "linphonerc"), linphoneRC{
		SIPPort: sipPort, AudioLo: rtpLo, AudioHi: rtpLo + linphoneRTPSlice/2 - 1,
		VideoLo: rtpLo + linphoneRTPSlice/2, VideoHi: rtpLo + linphoneRTPSlice - 1,
		Switch: ts.udpAddr(), User: user, Password: "demo" + user, Domain: testDomain,
		Display: "Linphone " + user,
	})
	tone := filepath.Join(dir, "tone.wav")
	writeToneWAV(t, tone, 30*time.Second)

	// -d 6 -l: liblinphone's full log (SIP messages, call states, RTP
	// statistics) in a file; the console keeps the user-level events.
	args := []string{"-oL", bin, "-c", filepath.Join(dir, "linphonerc"), "-d", "6", "-l", l.logPath}
	if opt.autoAnswer {
		args = append(args, "-a")
	}
	if tmo, err := exec.LookPath("timeout"); err == nil {
		args = append([]string{"-k", "2", "120", stdbuf}, args...)
		bin = tmo
	} else {
		bin = stdbuf
	}
	l.cmd = exec.Command(bin, args...)
	l.cmd.Dir = dir
	l.cmd.Env = []string{
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"LANG=C",
		// No sound leaves a test, on a developer's machine either: no
		// PulseAudio server, no ALSA card; "soundcard use files" below.
		"PULSE_SERVER=unix:" + filepath.Join(dir, "no-pulseaudio"),
		"ALSA_CONFIG_PATH=" + os.DevNull,
	}
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := l.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	l.stdin = stdin
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(l.errPath)
	if err != nil {
		t.Fatal(err)
	}
	l.cmd.Stderr = errf
	l.start = time.Now()
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start linphonec %s: %v", user, err)
	}
	errf.Close()
	go l.read(stdout)
	go func() {
		<-l.readDone
		l.cmd.Wait()
		close(l.exited)
	}()
	t.Cleanup(l.stop)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PARKSWITCH_INTEROP_LOGS") != "" {
			t.Logf("linphonec %s (pid %d, SIP 127.0.0.1:%d), dir %s\n--- console\n%s\n--- SIP trace and call states (%s)\n%s",
				user, l.cmd.Process.Pid, sipPort, dir, l.console(), l.logPath, tail(l.sipTrace(), 24000))
		}
	})

	// No sound card: the tone file is the microphone, the speaker a file.
	l.send(t, "soundcard use files")
	l.send(t, "play "+tone)
	waitUntil(t, 10*time.Second, "Linphone "+user+" to register", func() bool { return l.registered(ts) })
	if t.Failed() {
		t.FailNow()
	}
	return l
}

// linphoneRC fills testdata/interop/linphone/linphonerc.tmpl.
type linphoneRC struct {
	SIPPort, AudioLo, AudioHi, VideoLo, VideoHi int
	Switch                                      string // host:port of the switch's UDP listener
	User, Password, Domain, Display             string
}

func writeLinphoneRC(t *testing.T, path string, rc linphoneRC) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("..", "..", "testdata", "interop", "linphone", "linphonerc.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, rc); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b.String())
}

// writeToneWAV writes d of a 440 Hz tone, 8 kHz mono 16-bit PCM.
func writeToneWAV(t *testing.T, path string, d time.Duration) {
	t.Helper()
	const rate = 8000
	samples := make([]int16, int(d.Seconds()*rate))
	for i := range samples {
		samples[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate))
	}
	writeFile(t, path, string(media.EncodeWAV(samples)))
}

// prompt is what linphonec prints before reading a command; events printed
// while it waits follow it on the same line.
const linphonePrompt = "linphonec> "

func (l *linphonePhone) read(r io.Reader) {
	defer close(l.readDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// A prompt printed while an event line was being written splits
		// it ("…call 2linphonec> The distant endpoint…"): each part is a
		// line of its own.
		for _, text := range strings.Split(sc.Text(), linphonePrompt) {
			if strings.TrimSpace(text) == "" {
				continue
			}
			l.mu.Lock()
			l.lines = append(l.lines, linphoneLine{at: time.Since(l.start), text: text})
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}
}

// send writes one command to linphonec's stdin.
func (l *linphonePhone) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(l.stdin, cmd+"\n"); err != nil {
		t.Fatalf("linphonec %s: command %q: %v", l.user, cmd, err)
	}
}

// mark is where the next expect starts looking: after every line so far.
func (l *linphonePhone) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// expect waits for a console line matching re at or after *from, moves
// *from past it and returns the submatches.
func (l *linphonePhone) expect(t *testing.T, from *int, re *regexp.Regexp, limit time.Duration, what string) []string {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		m, changed := l.scan(from, re)
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-l.readDone:
			// Every line is in: a last look, then give up.
			if m, _ := l.scan(from, re); m != nil {
				return m
			}
			t.Fatalf("Linphone %s: linphonec exited while waiting for %s", l.user, what)
		case <-deadline.C:
			t.Fatalf("Linphone %s: no %s within %v (want /%s/)", l.user, what, limit, re)
		}
	}
}

// scan looks for re at or after *from; without a match it returns the
// channel closed on the next line.
func (l *linphonePhone) scan(from *int, re *regexp.Regexp) ([]string, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := *from; i < len(l.lines); i++ {
		if m := re.FindStringSubmatch(l.lines[i].text); m != nil {
			*from = i + 1
			return m, nil
		}
	}
	return nil, l.changed
}

// Console events of linphonec 5.1 (see its linphonec.c).
var (
	lpOutgoingRE  = regexp.MustCompile(`^Establishing call id to (.+), assigned id (\d+)$`)
	lpIncomingRE  = regexp.MustCompile(`^Receiving new incoming call from (.+), assigned id (\d+)$`)
	lpConnectedRE = func(id string) *regexp.Regexp { return regexp.MustCompile(`^Call ` + id + ` with (.+) connected\.$`) }
	lpStreamsRE   = func(id string) *regexp.Regexp {
		return regexp.MustCompile(`^Media streams established with (.+) for call ` + id + ` \((.+)\)\.$`)
	}
	lpEndedRE = func(id string) *regexp.Regexp {
		return regexp.MustCompile(`^Call ` + id + ` with (.+) (ended \((.*)\)|error)\.$`)
	}
	lpTransferedRE = func(id string) *regexp.Regexp {
		return regexp.MustCompile(`^The distant endpoint (.+) of call ` + id + ` has been transfered, you can safely close the call\.$`)
	}
	lpMessageRE = regexp.MustCompile(`^Message received from (.+): (.*)$`)
)

// dial has Linphone call uri and returns linphonec's call id.
func (l *linphonePhone) dial(t *testing.T, from *int, uri string) string {
	t.Helper()
	l.send(t, "call "+uri)
	return l.expect(t, from, lpOutgoingRE, 5*time.Second, "outgoing call to "+uri)[2]
}

// registered reports whether the switch holds l's contact.
func (l *linphonePhone) registered(ts *testServer) bool {
	for _, r := range ts.sw.Registrations() {
		if r.User == l.user && r.Contact.Port == l.sipPort {
			return true
		}
	}
	return false
}

// ownsPort reports whether port is one of Linphone's RTP ports.
func (l *linphonePhone) ownsPort(port uint16) bool {
	return int(port) >= l.audioLo && int(port) < l.audioLo+linphoneRTPSlice
}

// linphoneRTP is one "AUDIO SESSION'S RTP STATISTICS" block of the log,
// written each time a call's audio stream stops: at hang-up and at every
// re-INVITE that restarts the stream. The counters are those of the call's
// RTP session so far (they run on across re-INVITEs).
type linphoneRTP struct{ sent, received int }

var (
	lpStatsRE    = regexp.MustCompile(`AUDIO SESSION'S RTP STATISTICS[^\n]*\n[^\n]*\n[^\n]*sent\s+(\d+) packets\n(?:[^\n]*\n){2}[^\n]*received\s+(\d+) packets`)
	lpDownloadRE = regexp.MustCompile(`RTP : \[d=([0-9.]+),u=([0-9.]+)\]`)
)

// logMark is where later log searches start: the log's current size.
func (l *linphonePhone) logMark() int {
	fi, err := os.Stat(l.logPath)
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

func (l *linphonePhone) logSince(off int) []byte {
	b, _ := os.ReadFile(l.logPath)
	if off > len(b) {
		return nil
	}
	return b[off:]
}

// rtpStats waits until the log holds n statistics blocks after off and
// returns them.
func (l *linphonePhone) rtpStats(t *testing.T, off, n int) []linphoneRTP {
	t.Helper()
	var out []linphoneRTP
	waitUntil(t, 5*time.Second, fmt.Sprintf("%d RTP statistics blocks in Linphone %s's log", n, l.user), func() bool {
		out = out[:0]
		for _, m := range lpStatsRE.FindAllSubmatch(l.logSince(off), -1) {
			s, _ := strconv.Atoi(string(m[1]))
			r, _ := strconv.Atoi(string(m[2]))
			out = append(out, linphoneRTP{sent: s, received: r})
		}
		return len(out) >= n
	})
	if len(out) < n {
		t.FailNow()
	}
	return out
}

// hears waits until liblinphone's once-a-second bandwidth report (after
// off) shows at least kbps of incoming RTP.
func (l *linphonePhone) hears(t *testing.T, off int, kbps float64, what string) {
	t.Helper()
	waitUntil(t, 5*time.Second, fmt.Sprintf("%s: Linphone %s receiving %.0f kbit/s of RTP", what, l.user, kbps), func() bool {
		for _, m := range lpDownloadRE.FindAllSubmatch(l.logSince(off), -1) {
			if d, _ := strconv.ParseFloat(string(m[1]), 64); d >= kbps {
				return true
			}
		}
		return false
	})
	if t.Failed() {
		t.FailNow()
	}
}

// console is linphonec's console output with timestamps.
func (l *linphonePhone) console() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, ln := range l.lines {
		fmt.Fprintf(&b, "%7.3fs %s\n", ln.at.Seconds(), ln.text)
	}
	if e, _ := os.ReadFile(l.errPath); len(e) > 0 {
		fmt.Fprintf(&b, "--- stderr\n%s", tail(string(e), 2000))
	}
	return b.String()
}

var (
	lpLogStampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} `)
	lpLogKeepRE  = regexp.MustCompile(`message sent to \[|received \[\d+\] new bytes from|CallSession \[[^]]*\] moving from state|Account \[[^]]*\] for identity|liblinphone-error|belle-sip-error|RTP STATISTICS|^\S+ \S+ ortp-message-(sent|received) `)
)

// sipTrace extracts from the log the SIP messages (with the line saying
// where each went or came from), call and registration state changes and
// errors.
func (l *linphonePhone) sipTrace() string {
	b, err := os.ReadFile(l.logPath)
	if err != nil {
		return err.Error()
	}
	var out strings.Builder
	inMessage := false
	for _, line := range strings.Split(string(b), "\n") {
		if lpLogStampRE.MatchString(line) {
			inMessage = false
			if lpLogKeepRE.MatchString(line) {
				out.WriteString(line)
				out.WriteByte('\n')
				inMessage = strings.Contains(line, "message sent to [") || strings.Contains(line, "new bytes from")
			}
			continue
		}
		if inMessage {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// stop quits linphonec (it hangs up and unregisters), then kills its
// process group by PID if it lingers.
func (l *linphonePhone) stop() {
	io.WriteString(l.stdin, "quit\n")
	l.stdin.Close()
	select {
	case <-l.exited:
		return
	case <-time.After(3 * time.Second):
	}
	syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	<-l.exited
}

// TestInteropLinphoneCall: Linphone registers with digest; it calls a
// siptest phone and is called by one; audio flows both ways through the
// switch's relay; Linphone hangs up the first call, the siptest phone the
// second.
func TestInteropLinphoneCall(t *testing.T) {
	requireLinphone(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	lp := startLinphone(t, ts, "1001", linphoneOptions{})

	// Digest: the switch challenged, Linphone answered, the binding is
	// Linphone's own contact.
	for _, r := range ts.sw.Registrations() {
		if r.User == "1001" && !strings.HasPrefix(r.UserAgent, "Linphone") {
			t.Errorf("binding of 1001 has User-Agent %q, want Linphone's", r.UserAgent)
		}
	}

	// checkMedia: both ends send to the switch's relay, never to each other.
	checkMedia := func(t *testing.T, c *siptest.Call) {
		t.Helper()
		if lp.ownsPort(c.RemoteMedia().Port()) {
			t.Errorf("siptest phone sends RTP to %v: Linphone's own port, media not anchored", c.RemoteMedia())
		}
		if src := c.RTPSource(); lp.ownsPort(src.Port()) || src.Addr().String() != "127.0.0.1" {
			t.Errorf("RTP at the siptest phone comes from %v, not from the switch's relay", src)
		}
	}
	// audio: Linphone's tone reaches the siptest phone; the siptest phone
	// sends n packets (counted by Linphone at hang-up).
	audio := func(t *testing.T, c *siptest.Call, n int) {
		t.Helper()
		rtpFlows(t, c, 50, "Linphone's audio at the siptest phone (1 s of 20 ms packets)")
		if err := c.SendRTP(ctx, n, 10*time.Millisecond); err != nil {
			t.Fatalf("send RTP to Linphone: %v", err)
		}
		checkMedia(t, c)
	}

	t.Run("Linphone calls, Linphone hangs up", func(t *testing.T) {
		before := media.RelayedPackets()
		at, logAt := lp.mark(), lp.logMark()
		id := lp.dial(t, &at, "sip:1002@"+testDomain)
		var b *siptest.Call
		select {
		case in := <-bob.Incoming():
			if in.FromUser != "1001" || in.FromDisplay != "Alice Reception" {
				t.Errorf("siptest phone sees the caller as %q <%s>, want the configured Alice Reception <1001>", in.FromDisplay, in.FromUser)
			}
			var err error
			if b, err = in.Answer(ctx); err != nil {
				t.Fatalf("answer Linphone's call: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Linphone's INVITE did not reach 1002")
		}
		lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected")
		lp.expect(t, &at, lpStreamsRE(id), 5*time.Second, "media streams established")
		audio(t, b, 100)
		rtpAtSiptest := b.RTPReceived()

		lp.send(t, "terminate "+id)
		lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "call ended")
		waitDone(t, b, "siptest end of Linphone's hang-up")
		if r := b.EndReason(); r != siptest.EndRemoteHangup {
			t.Errorf("siptest phone's call ended by %v, want the BYE Linphone sent", r)
		}
		s := lp.rtpStats(t, logAt, 1)[0]
		if s.received < 90 {
			t.Errorf("Linphone received %d RTP packets of the 100 the siptest phone sent", s.received)
		}
		if s.sent < 50 || rtpAtSiptest < uint64(s.sent)*8/10 {
			t.Errorf("Linphone sent %d RTP packets, the siptest phone received %d", s.sent, rtpAtSiptest)
		}
		if got, want := media.RelayedPackets()-before, uint64(rtpAtSiptest)+uint64(s.received); got < want {
			t.Errorf("the relay counted %d packets, fewer than the %d both ends received", got, want)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("siptest phone calls, Linphone answers, siptest phone hangs up", func(t *testing.T) {
		at, logAt := lp.mark(), lp.logMark()
		c, err := bob.DialAsync(ctx, "1001")
		if err != nil {
			t.Fatal(err)
		}
		in := lp.expect(t, &at, lpIncomingRE, 5*time.Second, "incoming call")
		if !strings.Contains(in[1], "sip:1002@") || !strings.Contains(in[1], "Bob Sales") {
			t.Errorf("Linphone shows the caller as %s, want Bob Sales <sip:1002@…>", in[1])
		}
		id := in[2]
		lp.send(t, "answer "+id)
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("Linphone's answer: %v", err)
		}
		lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected")
		audio(t, c, 100)
		rtpAtSiptest := c.RTPReceived()

		if err := c.Hangup(ctx); err != nil {
			t.Fatalf("siptest hang-up: %v", err)
		}
		if m := lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "call ended by the far end"); m[2] == "error" {
			t.Errorf("Linphone ended the call with an error")
		}
		s := lp.rtpStats(t, logAt, 1)[0]
		if s.received < 90 {
			t.Errorf("Linphone received %d RTP packets of the 100 the siptest phone sent", s.received)
		}
		if s.sent < 50 || rtpAtSiptest < uint64(s.sent)*8/10 {
			t.Errorf("Linphone sent %d RTP packets, the siptest phone received %d", s.sent, rtpAtSiptest)
		}
	})
}

// TestInteropLinphonePark: a siptest phone (1001) calls Linphone (1002,
// auto-answer); Linphone blind-transfers the call to the park address (REFER
// to sip:park@contoso.com); the caller is parked (sendonly re-INVITE, music)
// and Linphone is told the code by MESSAGE; 1003 dials the code and talks to
// the caller.
func TestInteropLinphonePark(t *testing.T) {
	requireLinphone(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	lp := startLinphone(t, ts, "1002", linphoneOptions{autoAnswer: true})

	at := lp.mark()
	a, err := alice.Dial(ctx, "1002")
	if err != nil {
		t.Fatalf("call Linphone: %v", err)
	}
	id := lp.expect(t, &at, lpIncomingRE, 5*time.Second, "incoming call")[2]
	lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected (auto-answer)")
	rtpFlows(t, a, 25, "Linphone's audio at the caller")

	// Park: Linphone's blind transfer to the park address.
	parkAt := lp.mark()
	lp.send(t, "transfer "+id+" "+parkURI)
	offer := nextReInvite(t, a, "parked caller")
	if d := siptest.SDPDirection(offer.Body()); d != "sendonly" {
		t.Errorf("parked caller was offered %q, want sendonly (music on hold)", d)
	}
	if d := a.LocalDirection(); d != "recvonly" {
		t.Errorf("parked caller answered %q, want recvonly", d)
	}
	rtpFlows(t, a, 25, "music on hold at the parked caller")
	orbits := ts.sw.Lot().Orbits()
	if len(orbits) != 1 || orbits[0].Code != 10 || orbits[0].Policy != "DemoPark" ||
		orbits[0].Parker.User != "1002" || orbits[0].ParkedParty.User != "1001" || orbits[0].State != park.StateParked {
		t.Fatalf("orbits after Linphone's transfer to park = %+v, want code 10 of DemoPark, 1001 parked by 1002", orbits)
	}
	// NOTIFY (sipfrag 200): linphonec reports the transfer done and, as
	// liblinphone does after a successful transfer, hangs up its leg (BYE)
	// by itself. The MESSAGE with the code arrives around the same time and
	// is shown as a chat message.
	doneAt, msgAt, endAt := parkAt, parkAt, parkAt
	lp.expect(t, &doneAt, lpTransferedRE(id), 5*time.Second, "transfer success (NOTIFY sipfrag 200)")
	if m := lp.expect(t, &msgAt, lpMessageRE, 5*time.Second, "MESSAGE with the park code"); !strings.Contains(m[2], "parked at 10") ||
		!strings.Contains(m[1], "sip:park@"+testDomain) {
		t.Errorf("Linphone's chat message from %s says %q, want \"parked at 10\" from the park address", m[1], m[2])
	}
	lp.expect(t, &endAt, lpEndedRE(id), 5*time.Second, "Linphone's leg to end after the transfer")
	time.Sleep(200 * time.Millisecond)
	if !a.Established() {
		t.Fatal("the parked call was dropped when Linphone hung up its leg")
	}
	rtpFlows(t, a, 10, "music on hold after Linphone hung up")

	// Retrieve: 1003 dials the code and talks to the caller.
	c, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10: %v", err)
	}
	reoffer := nextReInvite(t, a, "retrieved caller")
	if d := siptest.SDPDirection(reoffer.Body()); d != "sendrecv" && d != "" {
		t.Errorf("retrieve re-INVITE offered %q, want sendrecv", d)
	}
	talk(t, ctx, a, c, 30)
	if n := len(ts.sw.Lot().Orbits()); n != 0 {
		t.Errorf("%d orbits left after the retrieve", n)
	}
	hangUp(t, ctx, c, a, "retrieved caller")
}

// TestInteropLinphoneParked: Linphone (1001) is the parked party. It calls a
// siptest phone (1002), which parks it; the switch's sendonly re-INVITE puts
// Linphone on hold with music; 1003 retrieves it and they talk both ways.
func TestInteropLinphoneParked(t *testing.T) {
	requireLinphone(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	lp := startLinphone(t, ts, "1001", linphoneOptions{})

	at, logAt := lp.mark(), lp.logMark()
	id := lp.dial(t, &at, "sip:1002@"+testDomain)
	b := answerNext(t, ctx, bob)
	lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected")
	rtpFlows(t, b, 20, "Linphone's audio at 1002")

	// 1002 parks Linphone: the switch re-INVITEs Linphone's leg sendonly,
	// Linphone shows the call paused by the far end and hears music.
	if code, err := b.Refer(ctx, parkURI); err != nil || code != 202 {
		t.Fatalf("REFER to park: %d %v", code, err)
	}
	lp.expect(t, &at, regexp.MustCompile(`^Call `+id+` has been paused by (.+)\.$`), 5*time.Second, "call paused by the switch (sendonly re-INVITE)")
	parkedAt := lp.rtpStats(t, logAt, 1)[0] // the stream restarts on the re-INVITE
	lp.hears(t, lp.logMark(), 40, "music on hold")
	select {
	case n := <-b.Notifies():
		if !strings.HasPrefix(string(n.Body()), "SIP/2.0 200") {
			t.Errorf("NOTIFY to the parker: %q", n.Body())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY to the parker")
	}
	select {
	case m := <-bob.Messages():
		if !strings.Contains(string(m.Body()), "parked at 10") {
			t.Errorf("MESSAGE to the parker: %q", m.Body())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no MESSAGE to the parker")
	}
	if err := b.Hangup(ctx); err != nil {
		t.Fatalf("parker hang-up: %v", err)
	}
	if o := ts.sw.Lot().Orbits(); len(o) != 1 || o[0].Code != 10 || o[0].ParkedParty.User != "1001" {
		t.Fatalf("orbits = %+v, want Linphone (1001) parked at 10", o)
	}

	// 1003 retrieves: the switch re-INVITEs Linphone sendrecv to the bridge.
	c, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("retrieve 10: %v", err)
	}
	lp.expect(t, &at, lpStreamsRE(id), 5*time.Second, "media streams re-established on retrieve")
	retrievedAt := lp.rtpStats(t, logAt, 2)[1]
	if got := retrievedAt.received - parkedAt.received; got < 20 {
		t.Errorf("Linphone received %d RTP packets while parked, want music (50 a second)", got)
	}
	if got := retrievedAt.sent - parkedAt.sent; got > 5 {
		t.Errorf("Linphone sent %d RTP packets while parked, want none: it answered recvonly", got)
	}
	rtpFlows(t, c, 25, "Linphone's audio at the retriever")
	if err := c.SendRTP(ctx, 100, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if src := c.RTPSource(); lp.ownsPort(src.Port()) {
		t.Errorf("RTP at the retriever comes from Linphone's own port %v, not the relay", src)
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "call ended by the retriever")
	final := lp.rtpStats(t, logAt, 3)[2]
	if got := final.received - retrievedAt.received; got < 90 {
		t.Errorf("Linphone received %d of the retriever's 100 RTP packets", got)
	}
	if n := len(ts.sw.Lot().Orbits()); n != 0 {
		t.Errorf("%d orbits left after the retrieve", n)
	}
}

// TestInteropLinphoneDigestSHA256: with SHA-256 listed first in the
// challenges (server.digest_algorithms: [SHA-256, MD5]), Linphone registers
// and places its call with SHA-256 credentials (RFC 8760).
func TestInteropLinphoneDigestSHA256(t *testing.T) {
	requireLinphone(t)
	ts := startServer(t, "", func(o *sw.Options) { o.DigestAlgorithms = []string{"SHA-256", "MD5"} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	lp := startLinphone(t, ts, "1001", linphoneOptions{})

	sent := regexp.MustCompile(`(?m)^(Proxy-)?Authorization: *Digest [^\n]*algorithm=([A-Za-z0-9-]+)`)
	algs := func() []string {
		var out []string
		for _, m := range sent.FindAllSubmatch(lp.logSince(0), -1) {
			out = append(out, string(m[1])+string(m[2]))
		}
		return out
	}
	at := lp.mark()
	id := lp.dial(t, &at, "sip:1002@"+testDomain)
	b := answerNext(t, ctx, bob)
	lp.expect(t, &at, lpConnectedRE(id), 5*time.Second, "call connected")
	waitUntil(t, 3*time.Second, "Linphone's credentials in its log", func() bool { return len(algs()) >= 2 })
	// REGISTER's Authorization, then INVITE's Proxy-Authorization (which
	// the ACK and later requests repeat).
	got := algs()
	ok := len(got) >= 2 && got[0] == "SHA-256" && got[1] == "Proxy-SHA-256"
	for _, a := range got {
		ok = ok && strings.HasSuffix(a, "SHA-256")
	}
	if !ok {
		t.Errorf("Linphone's credentials: %q, want SHA-256 throughout: Authorization on REGISTER, Proxy-Authorization on INVITE", got)
	}
	lp.send(t, "terminate "+id)
	lp.expect(t, &at, lpEndedRE(id), 5*time.Second, "call ended")
	waitDone(t, b, "callee")
}
