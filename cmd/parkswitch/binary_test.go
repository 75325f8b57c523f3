package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

var binary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildBinary builds the real parkswitch binary once per test run.
func buildBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "parkswitch-bin")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "parkswitch")
		cmd := exec.Command("go", "build", "-o", binary.path, ".")
		binary.out, binary.err = cmd.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// runBinary runs the binary to completion, bounded in time.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, buildBinary(t), args...).CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// expectRun runs the binary and checks its exit status and that its output
// has every string of want. It returns the output for further checks.
func expectRun(t *testing.T, args []string, code int, want []string) string {
	t.Helper()
	out, got := runBinary(t, args...)
	if got != code {
		t.Errorf("exit %d, want %d\n%s", got, code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	return out
}

// startBinary starts cmd, a run of the binary that lasts, with its output
// in the returned buffer. It is killed when the test ends, unless the test
// has waited for it.
func startBinary(t testing.TB, cmd *exec.Cmd) *syncBuffer {
	t.Helper()
	logs := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return logs
}

func TestBinaryCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "server:\n  domain: contoso.com\nusers:\n  - id: 1001@contoso.com\n    password: x\n")
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "server:\n  domain: contoso.com\n  sip_lisen: [udp://0.0.0.0:5060]\nmedia:\n  rtp_port_min: 70000\n")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"demo config", []string{"check", "--config", "../../configs/parkswitch.yaml"}, 0, []string{"ok", "5 users"}},
		{"built-in default", []string{"check"}, 0, []string{"(built-in)", "ok"}},
		{"valid file", []string{"check", "--config", good}, 0, []string{"ok"}},
		{"every problem with its line", []string{"check", "--config", bad}, 1, []string{"bad.yaml:3:", "sip_lisen", "bad.yaml:5:", "rtp_port_min"}},
		{"missing file", []string{"check", "--config", filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml"}},
		{"version", []string{"version"}, 0, []string{"parkswitch"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRun(t, tt.args, tt.wantCode, tt.want)
		})
	}
}

// TestBinaryServe starts the real binary, registers a phone, reads the admin
// API and stops it with SIGTERM.
func TestBinaryServe(t *testing.T) {
	dir := t.TempDir()
	sipPort, httpPort := freeUDPPort(t), freeUDPPort(t)
	cfg := "server:\n  domain: contoso.com\n" +
		"  sip_listen: [\"udp://127.0.0.1:" + strconv.Itoa(sipPort) + "\"]\n" +
		"  http_listen: \"127.0.0.1:" + strconv.Itoa(httpPort) + "\"\n" +
		"media:\n  rtp_port_min: 21000\n  rtp_port_max: 21999\n" +
		"users:\n  - id: 1001@contoso.com\n    password: demo1001\n    groups: [staff]\n"
	writeFile(t, filepath.Join(dir, "parkswitch.yaml"), cfg)
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	cmd, logs := serveBinary(t, ctx, filepath.Join(dir, "parkswitch.yaml"), base)

	p, err := siptest.NewPhone(ctx, siptest.Config{User: "1001", Password: "demo1001", Domain: testDomain,
		Server: "127.0.0.1:" + strconv.Itoa(sipPort)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Register(ctx, 120); err != nil {
		t.Fatalf("register with the real binary: %v\n%s", err, logs.String())
	}
	get := func(path string) string {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		return string(b)
	}
	if regs := get("/api/v1/registrations"); !strings.Contains(regs, `"user": "1001"`) || !strings.Contains(regs, p.Addr().String()) {
		t.Errorf("registrations lack the phone:\n%s", regs)
	}
	if m := get("/metrics"); !strings.Contains(m, "parkswitch_registrations 1") {
		t.Errorf("metrics lack the registration:\n%s", head(m, 2000))
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit 10 s after SIGTERM\n%s", logs.String())
	}
}
