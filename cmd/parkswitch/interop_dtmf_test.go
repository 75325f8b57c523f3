package main

import (
	"strings"
	"testing"
	"time"
)

// TestInteropBaresipDTMFPark: a real softphone keys #72 (baresip sndcode,
// RFC 4733 events) during a call: the other baresip is parked and hears
// music but not the digits, the keying phone is told the code and hung
// up by the switch, and a third retrieves the call with audio both ways.
func TestInteropBaresipDTMFPark(t *testing.T) {
	requireBaresip(t)
	ts := startServer(t, "", nil)
	alice := startBaresip(t, ts, "1001", hostAccount)
	bob := startBaresip(t, ts, "1002", hostAccount)
	carol := startBaresip(t, ts, "1003", domainAccount)
	am, bm, cm := alice.mark(), bob.mark(), carol.mark()

	alice.do("dial", "1002")
	bob.expect(&bm, "CALL_ESTABLISHED")
	alice.expect(&am, "CALL_ESTABLISHED")
	alice.hears(10, "audio from the callee")

	bob.do("sndcode", "#72")
	bob.expect(&bm, "CALL_CLOSED") // the switch's BYE
	alice.direction("recvonly", "parked party")
	var code string
	waitUntil(t, 5*time.Second, "the MESSAGE with the park code at the parker", func() bool {
		code, _ = bob.parkedAt()
		return code != ""
	})
	if code != "10" {
		t.Fatalf("parker was told code %q, want 10", code)
	}
	alice.hears(25, "music on hold at the parked party")
	if ev, _, err := alice.waitEvent(am, "CALL_DTMF_START", 0); err == nil {
		t.Errorf("the parked party heard the code's digit %q", ev.Param)
	}
	if _, _, err := alice.waitEvent(am, "CALL_CLOSED", 0); err == nil {
		t.Fatal("the parked party's call was closed")
	}

	carol.do("dial", code)
	carol.expect(&cm, "CALL_ESTABLISHED")
	alice.direction("sendrecv", "retrieved party")
	carol.hears(25, "audio from the retrieved party")
	alice.hears(25, "audio from the retriever")
	if orbits := ts.sw.Lot().Orbits(); len(orbits) != 0 {
		t.Errorf("orbits left after the retrieve: %+v", orbits)
	}
	carol.do("hangup", "")
	carol.expect(&cm, "CALL_CLOSED")
	alice.expect(&am, "CALL_CLOSED")
	waitUntil(t, 3*time.Second, "the calls to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
	if s := alice.eventTypes(0); strings.Contains(s, "CALL_DTMF") {
		t.Errorf("the parked party's events include DTMF: %s", s)
	}
}
