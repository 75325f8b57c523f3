package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestBinaryRefusesOpenAPI: serve and check both refuse an admin API that
// other hosts reach without credentials, naming the file, the line and
// the fix; with a token configured the same listener is accepted.
func TestBinaryRefusesOpenAPI(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "parkswitch.yaml")
	writeFile(t, cfg, "server:\n  domain: contoso.com\n  sip_listen: [\"udp://127.0.0.1:5060\"]\n  http_listen: 0.0.0.0:8080\n"+
		"users:\n  - id: 1001@contoso.com\n    password: demo1001\n")
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	for _, cmd := range []string{"check", "serve"} {
		out, code := runBinary(t, cmd, "--config", cfg)
		if code != 1 || !strings.Contains(out, cfg+":4: http_listen 0.0.0.0:8080 is reachable from other hosts but the admin API has no credentials: add http.users") {
			t.Errorf("%s: exit %d, want 1 and the refusal at line 4:\n%s", cmd, code, out)
		}
		if strings.Contains(out, "listening") {
			t.Errorf("%s listened before refusing:\n%s", cmd, out)
		}
	}
	writeFile(t, cfg, "server:\n  domain: contoso.com\n  http_listen: 0.0.0.0:8080\n"+
		"http:\n  tokens:\n    - {name: ci, token: "+testToken+", role: viewer}\n"+
		"users:\n  - id: 1001@contoso.com\n    password: demo1001\n")
	if out, code := runBinary(t, "check", "--config", cfg); code != 0 {
		t.Errorf("check with a token: exit %d\n%s", code, out)
	}
}

// TestBinaryPasswd: the printed hash verifies the password read from stdin.
func TestBinaryPasswd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBinary(t), "passwd", "--stdin", "--cost", "4")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("passwd: %v", err)
	}
	hash := strings.TrimSpace(string(out))
	if strings.Contains(hash, "\n") || bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery")) != nil {
		t.Errorf("passwd printed %q, not a hash of the password", out)
	}
	if out, code := runBinary(t, "passwd", "--stdin", "secret"); code != 2 || !strings.Contains(out, "never given on the command line") {
		t.Errorf("password as an argument: exit %d\n%s", code, out)
	}
}

// TestBinaryMessages: the messages a newcomer meets first.
func TestBinaryMessages(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	port := filepath.Join(dir, "port.yaml")
	writeFile(t, port, "server:\n  domain: contoso.com\n  sip_listen: [\"udp://0.0.0.0:99999\"]\n  http_listen: 127.0.0.1:99999\n")
	syntax := filepath.Join(dir, "syntax.yaml")
	writeFile(t, syntax, "server:\n  domain: contoso.com\n  sip_listen: [\"udp://0.0.0.0:5060\"\nusers: []\n")
	tests := []struct {
		name string
		args []string
		code int
		want []string
		not  []string
	}{
		{"port out of range", []string{"check", "--config", port}, 1,
			[]string{port + ":3: sip_listen entry \"udp://0.0.0.0:99999\" has a port out of range", port + ":4: http_listen \"127.0.0.1:99999\" has a port out of range"},
			[]string{"host:port"}},
		{"YAML syntax error", []string{"check", "--config", syntax}, 1,
			[]string{syntax + ":3: not valid YAML"}, []string{"domain is missing", ":4:"}},
		{"mistyped flag", []string{"check", "--confg", "x"}, 2,
			[]string{"parkswitch check: unknown flag --confg (did you mean --config?); usage: parkswitch check [--config FILE]"},
			[]string{"flag provided but not defined", "Usage of"}},
		{"mistyped serve flag", []string{"serve", "--log-levle", "debug"}, 2,
			[]string{"unknown flag --log-levle (did you mean --log-level?)"}, []string{"flag provided"}},
		{"mistyped policy flag", []string{"policy", "get", "--outptu", "json"}, 2,
			[]string{"unknown flag --outptu (did you mean --output?); usage: parkswitch policy get [<identity>]"}, []string{"flag provided"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := expectRun(t, tt.args, tt.code, tt.want)
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
			if tt.code == 2 && strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("usage mistake printed more than one line:\n%s", out)
			}
		})
	}
}
