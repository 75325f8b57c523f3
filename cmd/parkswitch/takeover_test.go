package main

import (
	"context"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

// clusterNodeConfig writes the configuration of one node of a cluster on
// the NATS servers at urls: its own node ID, SIP on ip, its own RTP ports.
func clusterNodeConfig(t *testing.T, node, ip string, urls []string) (cfgPath, sipAddr, api string) {
	t.Helper()
	dir := t.TempDir()
	sipPort, httpPort := freeUDPPort(t), freeUDPPort(t)
	lo := rtpRange.next
	rtpRange.next += 200
	cfg := strings.Replace(strings.Replace(baseConfig, "%d", strconv.Itoa(lo), 1), "%d", strconv.Itoa(lo+199), 1)
	cfg = strings.Replace(cfg, "  domain: contoso.com\n", "  domain: contoso.com\n"+
		"  sip_listen: [\"udp://"+ip+":"+strconv.Itoa(sipPort)+"\"]\n"+
		"  http_listen: \"127.0.0.1:"+strconv.Itoa(httpPort)+"\"\n", 1)
	cfg += "state:\n  node_id: " + node + "\n  nats_urls: [\"" + strings.Join(urls, "\", \"") + "\"]\n"
	cfgPath = filepath.Join(dir, "parkswitch.yaml")
	writeFile(t, cfgPath, cfg)
	writeFile(t, filepath.Join(dir, "policies.yaml"), basePolicies)
	return cfgPath, ip + ":" + strconv.Itoa(sipPort), "http://127.0.0.1:" + strconv.Itoa(httpPort)
}

// TestClusterTakeover is SPEC §10 "Cluster": two real binaries share a
// three-server NATS cluster. A call parked on node A, which is then
// killed, is re-INVITEd onto node B's music within 5 s with its code, and
// a phone registered on B retrieves it with two-way audio.
func TestClusterTakeover(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	urls := natstest.URLs(servers)
	cfgA, sipA, apiA := clusterNodeConfig(t, "a", "127.0.0.1", urls)
	cfgB, sipB, apiB := clusterNodeConfig(t, "b", "127.0.0.2", urls)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodeA, logsA := serveBinary(t, ctx, cfgA, apiA)
	_, logsB := serveBinary(t, ctx, cfgB, apiB)

	alice, bob := phoneAt(t, ctx, sipA, "1001", "udp"), phoneAt(t, ctx, sipA, "1002", "udp")
	carol := phoneAt(t, ctx, sipB, "1003", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	code := parkCall(t, ctx, bob, b, a)
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	before := getOrbits(t, apiA)
	if len(before) != 1 {
		t.Fatalf("orbits on A: %+v", before)
	}
	time.Sleep(300 * time.Millisecond) // the dialog snapshot is written behind

	if err := nodeA.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	nodeA.Wait()
	killed := time.Now()
	select {
	case offer := <-a.ReInvites():
		t.Logf("taken over %v after the kill", time.Since(killed).Round(time.Millisecond))
		if time.Since(killed) > 5*time.Second {
			t.Errorf("takeover took %v, want within 5 s", time.Since(killed))
		}
		if !strings.Contains(string(offer.Body()), "IN IP4 127.0.0.2") {
			t.Errorf("takeover offer is not node B's:\n%s", offer.Body())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no re-INVITE from node B 10 s after node A died\nA:\n%s\nB:\n%s", tail(logsA.String(), 3000), tail(logsB.String(), 3000))
	}
	rtpFlows(t, a, 10, "node B's music")
	if src := a.RTPSource().Addr(); src != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("music from %v, want node B", src)
	}
	after := getOrbits(t, apiB)
	if len(after) != 1 || after[0].Code != before[0].Code || !after[0].RingbackAt.Equal(before[0].RingbackAt) {
		t.Fatalf("orbits on B after the takeover: %+v, before on A: %+v", after, before)
	}
	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s on B: %v\n%s", code, err, tail(logsB.String(), 3000))
	}
	nextReInvite(t, a, "parked party on retrieve")
	talk(t, ctx, a, c, 20)
	hangUp(t, ctx, c, a, "retrieved party")
}
