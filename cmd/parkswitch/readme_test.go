package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeSection returns the text of the README section titled title.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	s = s[i+len(title)+5:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// shellWords splits a command line as sh would for the simple commands the
// README prints: words separated by blanks, double quotes grouping.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var (
		words []string
		cur   strings.Builder
		quote bool
		any   bool
	)
	for _, r := range line {
		switch {
		case r == '"':
			quote, any = !quote, true
		case (r == ' ' || r == '\t') && !quote:
			if any {
				words = append(words, cur.String())
				cur.Reset()
				any = false
			}
		case strings.ContainsRune(`\$'|&;<>*?[`, r) && !quote:
			t.Fatalf("README command %q needs more of a shell than this test has", line)
		default:
			cur.WriteRune(r)
			any = true
		}
	}
	if quote {
		t.Fatalf("unbalanced quote in README command %q", line)
	}
	if any {
		words = append(words, cur.String())
	}
	return words
}

var tableCommand = regexp.MustCompile("^\\|[^|]*\\| `(parkswitch [^`]*)` \\|$")

// copyDemo copies the demo configuration to dir/configs, where the
// commands' default --config finds it.
func copyDemo(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"parkswitch.yaml", "policies.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../configs", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "configs", f), string(data))
	}
}

// TestREADMEPolicyTable runs every command of the README's policy table,
// exactly as printed and in order, on a copy of the demo configuration.
func TestREADMEPolicyTable(t *testing.T) {
	bin := buildBinary(t)
	var cmds []string
	for _, line := range strings.Split(readmeSection(t, "Managing call park policies"), "\n") {
		if m := tableCommand.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, m[1])
		}
	}
	if len(cmds) < 7 {
		t.Fatalf("found %d commands in the README's policy table, want the 7 cmdlets and more", len(cmds))
	}
	dir := t.TempDir()
	copyDemo(t, dir)
	for _, c := range cmds {
		args := shellWords(t, c)[1:]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("README command %q on the demo configuration: %v\n%s", c, err, out)
		}
		t.Logf("%s\n%s", c, out)
	}
	// The sequence leaves the demo policies as they were, comments included.
	got, err := os.ReadFile(filepath.Join(dir, "configs", "policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("../../configs/policies.yaml")
	if !bytes.Equal(got, want) {
		t.Errorf("after the README's commands policies.yaml differs from the demo one:\n%s", got)
	}
}

// TestREADMECurl runs every curl command of the README against the real
// binary serving a copy of the demo configuration (on free ports instead
// of 5060 and 8080, which the commands are rewritten to).
func TestREADMECurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	bin := buildBinary(t)
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "curl ") {
			cmds = append(cmds, line)
		}
	}
	if len(cmds) == 0 {
		t.Fatal("no curl command in the README")
	}
	dir := t.TempDir()
	copyDemo(t, dir)
	cfgPath := filepath.Join(dir, "configs", "parkswitch.yaml")
	cfg, _ := os.ReadFile(cfgPath)
	sipPort, httpPort := freeUDPPort(t), freeUDPPort(t)
	httpAddr := "127.0.0.1:" + strconv.Itoa(httpPort)
	s := strings.Replace(string(cfg), `"udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"`, `"udp://127.0.0.1:`+strconv.Itoa(sipPort)+`"`, 1)
	s = strings.Replace(s, `"127.0.0.1:8080"`, `"`+httpAddr+`"`, 1)
	s = strings.Replace(s, "rtp_port_min: 20000", "rtp_port_min: 23000", 1)
	s = strings.Replace(s, "rtp_port_max: 29999", "rtp_port_max: 23099", 1)
	if s == string(cfg) || !strings.Contains(s, httpAddr) {
		t.Fatal("the demo configuration no longer has the listen addresses this test rewrites")
	}
	writeFile(t, cfgPath, s)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := startBinary(t, exec.CommandContext(ctx, bin, "serve", "--config", cfgPath))
	waitUntil(t, 10*time.Second, "the admin API", func() bool {
		return exec.Command(curl, "-sf", "-o", "/dev/null", "http://"+httpAddr+"/healthz").Run() == nil
	})
	for _, c := range cmds {
		line := strings.ReplaceAll(c, "127.0.0.1:8080", httpAddr)
		// -w prints the status; sh expands the README's $VARIABLES (unset: empty).
		cmd := exec.CommandContext(ctx, "sh", "-c", line+` -sS -o /dev/null -w '%{http_code}'`)
		cmd.Env = append(os.Environ(), "ADMIN_PASSWORD=", "TOKEN=")
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err := cmd.Run()
		// A stream (the event stream) runs until --max-time ends it, which
		// curl reports as a timeout (exit status 28) after the 200.
		var exit *exec.ExitError
		if strings.Contains(c, "--max-time") && errors.As(err, &exit) && exit.ExitCode() == 28 {
			err = nil
		}
		if err != nil || out.String() != "200" {
			t.Errorf("README command %q on the demo configuration: %v, status %q\n%s\n%s", c, err, out.String(), stderr.String(), logs.String())
		}
	}
}

// TestREADMECluster saves the Cluster section's configuration as the file
// it names and runs the section's commands on it, as printed.
func TestREADMECluster(t *testing.T) {
	bin := buildBinary(t)
	sec := readmeSection(t, "Cluster")
	_, rest, ok := strings.Cut(sec, "```yaml\n")
	yaml, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(yaml, "nats_urls:") || !strings.Contains(sec, "`node-a.yaml`") {
		t.Fatal("the Cluster section lost its node-a.yaml example")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "node-a.yaml"), yaml)
	policies, err := os.ReadFile("../../configs/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "policies.yaml"), string(policies))
	n := 0
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "bin/parkswitch ") {
			continue
		}
		n++
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, shellWords(t, line)[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Errorf("README command %q: %v\n%s", line, err, out)
		}
	}
	if n == 0 {
		t.Fatal("no command in the Cluster section")
	}
}
