package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/park"
	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// restartConfig is the test configuration with fixed SIP, HTTP and RTP
// ports and its state in dir, so that a second process finds all of it.
func restartConfig(t *testing.T, dir string) (cfgPath, sipAddr, api string) {
	t.Helper()
	sipPort, httpPort := freeUDPPort(t), freeUDPPort(t)
	lo := rtpRange.next
	rtpRange.next += 200
	cfg := strings.Replace(strings.Replace(baseConfig, "%d", strconv.Itoa(lo), 1), "%d", strconv.Itoa(lo+199), 1)
	cfg = strings.Replace(cfg, "  domain: contoso.com\n", "  domain: contoso.com\n"+
		"  sip_listen: [\"udp://127.0.0.1:"+strconv.Itoa(sipPort)+"\"]\n"+
		"  http_listen: \"127.0.0.1:"+strconv.Itoa(httpPort)+"\"\n", 1)
	cfg += "state:\n  data_dir: state\n  node_id: restart-test\n"
	cfgPath = filepath.Join(dir, "parkswitch.yaml")
	writeFile(t, cfgPath, cfg)
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	return cfgPath, "127.0.0.1:" + strconv.Itoa(sipPort), "http://127.0.0.1:" + strconv.Itoa(httpPort)
}

// serveBinary starts the real binary on cfg and waits for /healthz.
func serveBinary(t testing.TB, ctx context.Context, cfg, api string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, buildBinary(t), "serve", "--config", cfg)
	logs := startBinary(t, cmd)
	waitUntil(t, 15*time.Second, "/healthz of the binary", func() bool {
		res, err := http.Get(api + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return cmd, logs
}

func getOrbits(t testing.TB, api string) []park.OrbitInfo {
	t.Helper()
	res, err := http.Get(api + "/api/v1/orbits")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out []park.OrbitInfo
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBinaryKilledMidPark is SPEC §10 "Restart": the real binary is killed
// with SIGKILL while two calls are parked and one is bridged. The next
// process lists the same orbits, puts each parked party back on music from
// the same relay port within 2 s, retrieves one, answers the other's BYE,
// and hangs up both legs of the bridged call.
func TestBinaryKilledMidPark(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { testRestartMidPark(t, sig) })
	}
}

// testRestartMidPark stops the binary with sig; SIGTERM is a graceful
// stop (an upgrade), which must leave parked calls for the next start.
func testRestartMidPark(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	cfg, sipAddr, api := restartConfig(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	first, logs := serveBinary(t, ctx, cfg, api)

	ph := map[string]*siptest.Phone{}
	for _, u := range []string{"1001", "1002", "1003", "1004", "1005", "1006"} {
		ph[u] = phoneAt(t, ctx, sipAddr, u, "udp")
	}
	// Bob parks Alice (DemoPark), Frank parks Erin (SalesPolicy); Carol
	// and Dave talk.
	alice, bob := call(t, ctx, ph["1001"], ph["1002"], "1002")
	aliceCode := parkCall(t, ctx, ph["1002"], bob, alice)
	erin, frank := call(t, ctx, ph["1005"], ph["1006"], "1006")
	erinCode := parkCall(t, ctx, ph["1006"], frank, erin)
	for _, c := range []*siptest.Call{bob, frank} {
		if err := c.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	carol, dave := call(t, ctx, ph["1003"], ph["1004"], "1004")
	talk(t, ctx, carol, dave, 10)
	before := getOrbits(t, api)
	if len(before) != 2 {
		t.Fatalf("orbits before the kill: %+v", before)
	}
	relay := map[*siptest.Call]string{alice: alice.RTPSource().String(), erin: erin.RTPSource().String()}
	// The bridged call's dialogs are stored once it has lasted
	// sw.BridgedSaveDelay, then written behind.
	time.Sleep(sw.BridgedSaveDelay + 300*time.Millisecond)

	if err := first.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	t.Logf("first process stopped by %v; its log:\n%s", sig, tail(logs.String(), 3000))
	for _, c := range []*siptest.Call{alice, erin} {
		if !c.Established() {
			t.Fatalf("parked call ended by the stop (%v)", c.EndReason())
		}
	}

	start := time.Now()
	_, logs = serveBinary(t, ctx, cfg, api)
	for _, c := range []*siptest.Call{alice, erin} {
		offer := nextReInvite(t, c, "parked party after the restart")
		if d := siptest.SDPDirection(offer.Body()); d != "sendonly" {
			t.Errorf("restart re-INVITE offered %q, want sendonly", d)
		}
		rtpFlows(t, c, 10, "music after the restart")
		if src := c.RTPSource().String(); src != relay[c] {
			t.Errorf("music comes from %s after the restart, was %s", src, relay[c])
		}
	}
	t.Logf("music back %v after the restart began", time.Since(start).Round(time.Millisecond))
	waitDone(t, carol, "bridged caller after the restart")
	waitDone(t, dave, "bridged callee after the restart")
	after := getOrbits(t, api)
	if len(after) != len(before) {
		t.Fatalf("orbits after the restart: %+v, before: %+v", after, before)
	}
	for i := range before {
		if after[i].Code != before[i].Code || after[i].Policy != before[i].Policy || !after[i].RingbackAt.Equal(before[i].RingbackAt) {
			t.Errorf("orbit %d after the restart = %+v, before = %+v", i, after[i], before[i])
		}
	}

	// Carol retrieves Alice and they talk; Erin hangs up and her BYE is
	// answered.
	c, err := ph["1003"].Dial(ctx, aliceCode)
	if err != nil {
		t.Fatalf("retrieve %s after the restart: %v\n%s", aliceCode, err, logs.String())
	}
	nextReInvite(t, alice, "parked party on retrieve")
	talk(t, ctx, alice, c, 20)
	if err := erin.Hangup(ctx); err != nil {
		t.Errorf("parked party's BYE after the restart: %v", err)
	}
	hangUp(t, ctx, c, alice, "retrieved party")
	waitUntil(t, 5*time.Second, "orbits to be freed", func() bool { return len(getOrbits(t, api)) == 0 })
	_ = erinCode
}
