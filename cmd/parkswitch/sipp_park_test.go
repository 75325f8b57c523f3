package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// sippUser starts a SIPp UAC that authenticates as user (password
// demo<user>) and dials dialed, on its own SIP and media ports. The message
// trace is kept for failure reports (sippTrace).
func sippUser(t *testing.T, ctx context.Context, ts *testServer, xml, user, dialed string, extra ...string) *sippRun {
	t.Helper()
	args := []string{ts.udpAddr(), "-sf", scenario(xml), "-s", dialed,
		"-au", user, "-ap", "demo" + user, "-i", "127.0.0.1", "-p", strconv.Itoa(freeUDPPort(t)),
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(freeUDPPort(t)), "-m", "1", "-trace_msg"}
	return startSipp(t, ctx, append(args, extra...)...)
}

// sippTrace is the SIP messages SIPp sent and received.
func sippTrace(r *sippRun) string {
	logs, _ := filepath.Glob(filepath.Join(r.cmd.Dir, "*_messages.log"))
	var b strings.Builder
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		b.Write(data)
	}
	return b.String()
}

// TestSippParkAndRetrieve drives park and retrieve with SIPp as the phones
// that park and retrieve: Alice (1001, SIPp) calls Bob (1002, an in-process
// phone that answers), parks him with a REFER to the park address and hangs
// up; Bob hears music. Carol (1003, SIPp) dials the code and Bob hears her
// A-law RTP. Users without park, and empty codes, are refused.
func TestSippParkAndRetrieve(t *testing.T) {
	requireSipp(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bob := phone(t, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)

	// Park.
	parker := sippUser(t, ctx, ts, "uac_park.xml", "1001", "1002")
	var b *siptest.Call
	select {
	case b = <-bob.Answered():
	case <-time.After(10 * time.Second):
		t.Fatalf("the call from SIPp never reached 1002\n%s", sippTrace(parker))
	}
	select {
	case offer := <-b.ReInvites():
		if d := siptest.SDPDirection(offer.Body()); d != "sendonly" {
			t.Errorf("parked party re-INVITEd with %q, want sendonly", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("parked party got no re-INVITE after the REFER\n%s", sippTrace(parker))
	}
	if d := b.LocalDirection(); d != "recvonly" {
		t.Errorf("parked party answered %q, want recvonly", d)
	}
	music := b.RTPReceivedPT(8)
	waitUntil(t, 5*time.Second, "music on hold (PCMA) at the parked party", func() bool { return b.RTPReceivedPT(8)-music >= 10 })
	parker.wait(t, "park")
	if !strings.Contains(sippTrace(parker), "SIP/2.0 202") {
		t.Errorf("SIPp's trace shows no 202 to the REFER")
	}

	orbits := ts.sw.Lot().Orbits()
	if len(orbits) != 1 || orbits[0].Code != 10 || orbits[0].Policy != "DemoPark" ||
		orbits[0].Parker.User != "1001" || orbits[0].ParkedParty.User != "1002" || orbits[0].State != park.StateParked {
		t.Fatalf("orbits after the park = %+v, want one: code 10 in DemoPark, 1001 parked 1002", orbits)
	}
	time.Sleep(200 * time.Millisecond)
	if !b.Established() {
		t.Fatal("the parked call was dropped when the parker hung up")
	}

	// Refusals, while 10 is parked: a user whose policy has no park may not
	// take it (403), and a code nobody parked on is empty (404).
	for _, r := range []struct {
		user, code, want string
	}{
		{"1004", "10", "403"}, // Global: allow_call_park false
		{"1001", "11", "404"}, // DemoPark, but nothing at 11
	} {
		refused := sippUser(t, ctx, ts, "uac_retrieve_refused.xml", r.user, r.code, "-set", "expected", r.want)
		refused.wait(t, r.user+" dialing "+r.code)
		if !strings.Contains(sippTrace(refused), "SIP/2.0 "+r.want) {
			t.Errorf("%s dialing %s: no %s in SIPp's trace", r.user, r.code, r.want)
		}
	}
	if n := len(ts.sw.Lot().Orbits()); n != 1 {
		t.Fatalf("%d orbits after the refused retrieves, want the parked call still there", n)
	}

	// Retrieve: Bob is re-INVITEd off music to Carol's media, and the
	// A-law RTP SIPp plays reaches him through the relay.
	relayed := media.RelayedPackets()
	retriever := sippUser(t, ctx, ts, "uac_retrieve.xml", "1003", "10")
	select {
	case offer := <-b.ReInvites():
		if d := siptest.SDPDirection(offer.Body()); d != "sendrecv" && d != "" {
			t.Errorf("retrieve re-INVITE offered %q, want sendrecv", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("parked party got no re-INVITE on retrieve\n%s", sippTrace(retriever))
	}
	// From here the music is off: every A-law packet is Carol's.
	heard := b.RTPReceivedPT(8)
	waitUntil(t, 10*time.Second, "SIPp's RTP at the retrieved party", func() bool { return b.RTPReceivedPT(8)-heard >= 20 })
	retriever.wait(t, "retrieve")
	if got := b.RTPReceivedPT(8) - heard; got < 20 {
		t.Errorf("retrieved party got %d A-law packets from the retriever, want at least 20", got)
	}
	if got := media.RelayedPackets() - relayed; got < 20 {
		t.Errorf("relayed %d RTP packets during the retrieved call, want at least 20", got)
	}
	if n := len(ts.sw.Lot().Orbits()); n != 0 {
		t.Errorf("%d orbits left after the retrieve", n)
	}
	// Carol hung up: Bob's call ends too.
	waitDone(t, b, "retrieved party")
}
