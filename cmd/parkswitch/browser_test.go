package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The pages in a real browser: headless Chromium from the system, driven
// by playwright-core (testdata/browser, installed by make deps-browser)
// through testdata/browser/drive.js, which takes one JSON command a line.
// Without Chromium, Node.js or playwright-core the tests are skipped, unless
// PARKSWITCH_REQUIRE_BROWSER=1 (make test) makes that a failure.

const browserDir = "../../testdata/browser"

// requireBrowser returns the Chromium and node executables.
func requireBrowser(t testing.TB) (chromium, node string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("PARKSWITCH_REQUIRE_BROWSER") == "1" {
			t.Fatalf("%s is missing: run make deps-browser", what)
		}
		t.Skipf("%s is missing (make deps-browser installs it)", what)
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		missing("Chromium (Debian package chromium)")
	}
	node, err = exec.LookPath("node")
	if err != nil {
		missing("Node.js")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core in " + browserDir)
	}
	return chromium, node
}

// browser is a running drive.js with its Chromium.
type browser struct {
	t       testing.TB
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan browserReply
	stderr  *syncBuffer
	profile string
	next    int
}

type browserReply struct {
	ID    int             `json:"id"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
	MS    float64         `json:"ms"`
}

// startBrowser starts Chromium on a fresh profile; the test's cleanup
// closes it, kills whatever of it is left and removes the profile.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	chromium, node := requireBrowser(t)
	profile, err := os.MkdirTemp("", "parkswitch-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "drive.js")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "USER_DATA_DIR="+profile, "DRIVE_DEADLINE_MS=600000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b := &browser{t: t, cmd: cmd, replies: make(chan browserReply, 16), stderr: &syncBuffer{}, profile: profile}
	cmd.Stderr = b.stderr
	if b.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start drive.js: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(b.replies)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var r browserReply
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				b.replies <- r
			}
		}
	}()
	t.Cleanup(func() { b.close(read) })
	select {
	case r, ok := <-b.replies:
		if !ok || !r.OK {
			t.Fatalf("Chromium did not start:\n%s", b.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Chromium did not start in 60 s:\n%s", b.stderr.String())
	}
	return b
}

// close ends drive.js (which closes Chromium) by closing its stdin,
// kills both if they linger, and removes the profile.
func (b *browser) close(read <-chan struct{}) {
	b.in.Close()
	done := make(chan error, 1)
	go func() {
		<-read
		done <- b.cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		b.t.Errorf("drive.js did not exit within 15 s of its stdin closing: killed")
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Chromium runs in a process group of its own: find it by its profile.
	if n := killProfile(b.profile); n > 0 {
		b.t.Errorf("%d Chromium processes outlived drive.js: killed", n)
	}
	os.RemoveAll(b.profile)
	if b.t.Failed() {
		b.t.Logf("drive.js stderr:\n%s", b.stderr.String())
	}
}

// killProfile kills every process whose command line names profile.
func killProfile(profile string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte(profile)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// do runs one command and returns its reply; a command the browser could
// not carry out is an error.
func (b *browser) do(op string, args map[string]any) (browserReply, error) {
	b.t.Helper()
	b.next++
	msg := map[string]any{"id": b.next, "op": op}
	for k, v := range args {
		msg[k] = v
	}
	timeout := 5000
	if v, ok := args["timeout"].(int); ok {
		timeout = v
	}
	line, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		return browserReply{}, fmt.Errorf("drive.js is gone: %w", err)
	}
	select {
	case r, ok := <-b.replies:
		switch {
		case !ok:
			return browserReply{}, errors.New("drive.js exited")
		case r.ID != b.next:
			return r, fmt.Errorf("reply %d to command %d", r.ID, b.next)
		case !r.OK:
			return r, fmt.Errorf("%s %v: %s", op, args, r.Error)
		}
		return r, nil
	case <-time.After(time.Duration(timeout)*time.Millisecond + 10*time.Second):
		return browserReply{}, fmt.Errorf("%s: no reply from drive.js", op)
	}
}

// must is do, failing the test on an error.
func (b *browser) must(op string, args map[string]any) browserReply {
	b.t.Helper()
	r, err := b.do(op, args)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

func (b *browser) goTo(url string) { b.t.Helper(); b.must("goto", map[string]any{"url": url}) }

func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.must("fill", map[string]any{"selector": sel, "value": value})
}

func (b *browser) click(sel string, nav bool) {
	b.t.Helper()
	b.must("click", map[string]any{"selector": sel, "nav": nav})
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	json.Unmarshal(b.must("text", map[string]any{"selector": sel}).Value, &s)
	return strings.Join(strings.Fields(s), " ")
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	var n int
	json.Unmarshal(b.must("count", map[string]any{"selector": sel}).Value, &n)
	return n
}

// wait waits up to limit for sel to reach state; it returns the error of
// a wait that timed out.
func (b *browser) wait(sel, state string, limit time.Duration) error {
	b.t.Helper()
	_, err := b.do("wait", map[string]any{"selector": sel, "state": state, "timeout": int(limit / time.Millisecond)})
	return err
}

// signIn signs in through the form and lands on the board.
func (b *browser) signIn(base, name, password string) {
	b.t.Helper()
	b.goTo(base + "/")
	b.fill(`input[name=name]`, name)
	b.fill(`input[name=password]`, password)
	b.click(`form[action="/signin"] button[type=submit]`, true)
	if err := b.wait("#board", "attached", 5*time.Second); err != nil {
		b.t.Fatalf("no board after signing in as %s: %v", name, err)
	}
}

// shownWithin waits for the board to show (state attached) or drop
// (detached) the row of key, starting at since, and fails the test when
// it took more than limit; it returns how long it took.
func (b *browser) shownWithin(key, state string, since time.Time, limit time.Duration) time.Duration {
	b.t.Helper()
	sel := fmt.Sprintf(`#board tr[data-key=%q]`, key)
	if err := b.wait(sel, state, limit+4*time.Second); err != nil {
		b.t.Fatalf("the board never got row %s to %s: %v", key, state, err)
	}
	took := time.Since(since)
	if took > limit {
		b.t.Errorf("row %s %s after %v, want within %v", key, state, took.Round(time.Millisecond), limit)
	}
	return took
}
