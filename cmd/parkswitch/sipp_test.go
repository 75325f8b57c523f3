package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/media"
)

// requireSipp skips without SIPp, unless the run demands it (make test).
func requireSipp(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("PARKSWITCH_REQUIRE_SIPP") != "" {
			t.Fatal("sipp is required (apt-get install sip-tester)")
		}
		t.Skip("sipp not installed")
	}
	return path
}

// sippRun is one SIPp process with its output kept for failure reports.
type sippRun struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startSipp starts SIPp bounded by a timeout; the test ends it if needed.
func startSipp(t testing.TB, ctx context.Context, args ...string) *sippRun {
	t.Helper()
	bin := requireSipp(t)
	r := &sippRun{}
	args = append([]string{"-nostdin", "-timeout", "30s", "-timeout_error"}, args...)
	r.cmd = exec.CommandContext(ctx, bin, args...)
	r.cmd.Dir = t.TempDir() // SIPp writes its logs into the working directory
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start sipp: %v", err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	return r
}

// wait waits for SIPp to exit and fails the test with its output on error.
func (r *sippRun) wait(t *testing.T, name string) {
	t.Helper()
	if err := r.cmd.Wait(); err != nil {
		logs, _ := filepath.Glob(filepath.Join(r.cmd.Dir, "*.log"))
		var extra bytes.Buffer
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			fmt.Fprintf(&extra, "--- %s\n%s\n", filepath.Base(l), b)
		}
		t.Fatalf("sipp %s failed: %v\n%s\n%s", name, err, head(r.out.String(), 1500), tail(extra.String(), 6000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func scenario(name string) string {
	abs, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "sipp", name))
	return abs
}

// TestSippCallWithRTP: a SIPp UAC authenticates with digest and calls a
// SIPp UAS (a static contact) through the switch; A-law RTP played from a
// pcap is relayed to the UAS, echoed, and relayed back. With a delayed
// offer the INVITE reaches the callee without SDP, the callee's offer goes
// back in the 200 and the caller's answer, from its ACK, in the switch's
// ACK (the scenarios check where the SDP is).
func TestSippCallWithRTP(t *testing.T) {
	requireSipp(t)
	for _, tt := range []struct{ name, uac, uas string }{
		{"digest", "uac_auth.xml", "uas.xml"},
		{"delayed offer", "uac_late_offer.xml", "uas_late_offer.xml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uasPort := freeUDPPort(t)
			ts := startServer(t, `
  - id: 2000@contoso.com
    display_name: SIPp Answering
    password: demo2000
    contact: sip:2000@127.0.0.1:`+strconv.Itoa(uasPort)+`
`, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()

			before := media.RelayedPackets()
			uas := startSipp(t, ctx, "-sf", scenario(tt.uas), "-i", "127.0.0.1", "-p", strconv.Itoa(uasPort),
				"-mi", "127.0.0.1", "-mp", strconv.Itoa(freeUDPPort(t)), "-rtp_echo", "-m", "1")
			time.Sleep(200 * time.Millisecond) // let the UAS bind
			uac := startSipp(t, ctx, ts.udpAddr(), "-sf", scenario(tt.uac), "-s", "2000",
				"-au", "1001", "-ap", "demo1001", "-i", "127.0.0.1", "-mi", "127.0.0.1",
				"-mp", strconv.Itoa(freeUDPPort(t)), "-m", "1")
			uac.wait(t, "uac")
			uas.wait(t, "uas")

			// About 100 packets are played in the 2 s of the call; each is
			// relayed to the UAS and, echoed, back to the UAC.
			if got := media.RelayedPackets() - before; got < 100 {
				t.Fatalf("relayed %d RTP packets through the switch, want at least 100 (both directions)", got)
			}
		})
	}
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestTrunk: a carrier on 127.0.0.2 calls a registered phone without
// digest; a user dials 9<number> and reaches the carrier, prefix stripped.
func TestTrunk(t *testing.T) {
	requireSipp(t)
	trunkPort := freeUDPPort(t)
	ts := startServer(t, `
trunks:
  - name: carrier
    address: 127.0.0.2:`+strconv.Itoa(trunkPort)+`
    transport: udp
    outbound_prefix: "9"
`, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	t.Run("inbound without digest", func(t *testing.T) {
		bob := phone(t, ctx, ts, "1002", "udp")
		bob.AutoAnswer(true)
		uac := startSipp(t, ctx, ts.udpAddr(), "-sf", scenario("uac_trunk.xml"), "-s", "1002",
			"-i", "127.0.0.2", "-p", strconv.Itoa(trunkPort), "-mi", "127.0.0.2", "-mp", strconv.Itoa(freeUDPPort(t)), "-m", "1", "-trace_msg")
		uac.wait(t, "trunk uac")
		if os.Getenv("DBG") != "" {
			logs, _ := filepath.Glob(filepath.Join(uac.cmd.Dir, "*"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s\n%s", l, b)
			}
		}
	})
	t.Run("inbound to an unknown number", func(t *testing.T) {
		uac := startSipp(t, ctx, ts.udpAddr(), "-sf", scenario("uac_trunk.xml"), "-s", "94155550100",
			"-i", "127.0.0.2", "-p", strconv.Itoa(trunkPort), "-mi", "127.0.0.2", "-mp", strconv.Itoa(freeUDPPort(t)), "-m", "1")
		// A trunk reaches users only: not another trunk through a prefix.
		if err := uac.cmd.Wait(); err == nil {
			t.Fatal("a trunk call to 9<number> was connected; want 404")
		}
		if !strings.Contains(uac.out.String(), "404 Not Found") {
			t.Errorf("want 404, SIPp said:\n%s", head(uac.out.String(), 1500))
		}
	})
	t.Run("outbound with prefix", func(t *testing.T) {
		uas := startSipp(t, ctx, "-sf", scenario("uas.xml"), "-i", "127.0.0.2", "-p", strconv.Itoa(trunkPort),
			"-mi", "127.0.0.2", "-mp", strconv.Itoa(freeUDPPort(t)), "-m", "1", "-trace_msg")
		time.Sleep(200 * time.Millisecond)
		alice := phone(t, ctx, ts, "1001", "udp")
		c, err := alice.Dial(ctx, "94155550100")
		if err != nil {
			t.Fatalf("dial out: %v", err)
		}
		if err := c.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		uas.wait(t, "carrier uas")
		logs, _ := filepath.Glob(filepath.Join(uas.cmd.Dir, "*_messages.log"))
		var all []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			all = append(all, b...)
		}
		if !bytes.Contains(all, []byte("INVITE sip:4155550100@127.0.0.2")) {
			t.Errorf("the carrier did not get the number without its prefix:\n%s", head(string(all), 2000))
		}
	})
}
