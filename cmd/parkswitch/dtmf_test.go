package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/park"
	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// eventPT is the telephone-event payload type siptest phones offer.
const eventPT = 101

// keyRTP keys digits on c as RFC 4733 events. A DTMF park hangs the
// keying phone up while its last digit's packets are still going out.
func keyRTP(t *testing.T, ctx context.Context, c *siptest.Call, digits string) {
	t.Helper()
	for i, d := range digits {
		err := c.SendRTPEvent(ctx, d)
		if errors.Is(err, siptest.ErrCallEnded) && i == len(digits)-1 {
			return
		}
		if err != nil {
			t.Fatalf("key %c: %v", d, err)
		}
	}
}

// keyInfo keys digits on c as SIP INFO (application/dtmf-relay), each
// answered 200.
func keyInfo(t *testing.T, ctx context.Context, c *siptest.Call, digits string) {
	t.Helper()
	for _, d := range digits {
		if code, err := c.SendDTMF(ctx, d); err != nil || code != 200 {
			t.Fatalf("INFO %c: %d %v", d, code, err)
		}
	}
}

// infoDigits reads the DTMF INFOs c has received within wait, in order.
func infoDigits(c *siptest.Call, wait time.Duration) string {
	var out strings.Builder
	deadline := time.After(wait)
	for {
		select {
		case r := <-c.Infos():
			for line := range strings.Lines(string(r.Body())) {
				if v, ok := strings.CutPrefix(line, "Signal="); ok {
					out.WriteString(strings.TrimSpace(v))
				}
			}
			if ct := r.ContentType(); ct != nil && ct.Value() == "application/dtmf" {
				out.WriteString(strings.TrimSpace(string(r.Body())))
			}
		case <-deadline:
			return out.String()
		}
	}
}

// dtmfParked checks what a DTMF park does: the parked party re-INVITEd
// sendonly and hearing music, the parker told the code by MESSAGE and its
// leg hung up by the switch. It returns the code.
func dtmfParked(t *testing.T, parkerPhone *siptest.Phone, parker, parked *siptest.Call) string {
	t.Helper()
	offer := nextReInvite(t, parked, "parked party")
	if d := siptest.SDPDirection(offer.Body()); d != "sendonly" {
		t.Errorf("parked party offered %q, want sendonly", d)
	}
	rtpFlows(t, parked, 10, "music on hold at the parked party")
	var code string
	select {
	case m := <-parkerPhone.Messages():
		body := string(m.Body())
		i := strings.Index(body, "parked at ")
		if i < 0 {
			t.Fatalf("MESSAGE to the parker says %q", body)
		}
		code = strings.TrimSpace(body[i+len("parked at "):])
	case <-time.After(5 * time.Second):
		t.Fatal("no MESSAGE with the park code")
	}
	// Well before ReleaseTimeout (30 s): the switch hangs the parker up.
	waitDone(t, parker, "the parker's leg after a DTMF park")
	if r := parker.EndReason(); r != siptest.EndRemoteHangup {
		t.Errorf("parker's leg ended by %q, want the switch's BYE", r)
	}
	if !parked.Established() {
		t.Fatal("the parked party's call ended")
	}
	return code
}

// TestDTMFPark: Bob keys #72 during a call with Alice, as RFC 4733 events
// or as INFO; Alice is parked, never hears the code, and Carol retrieves
// her and talks to her both ways.
func TestDTMFPark(t *testing.T) {
	for _, via := range []string{"rtp", "info"} {
		t.Run(via, func(t *testing.T) {
			ts := startServer(t, "", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			alice := phone(t, ctx, ts, "1001", "udp")
			bob := phone(t, ctx, ts, "1002", "tcp")
			carol := phone(t, ctx, ts, "1003", "udp")

			a, b := call(t, ctx, alice, bob, "1002")
			talk(t, ctx, a, b, 10)
			if via == "rtp" {
				keyRTP(t, ctx, b, "#72")
			} else {
				keyInfo(t, ctx, b, "#72")
			}
			code := dtmfParked(t, bob, b, a)
			if code != "10" {
				t.Errorf("DTMF park got code %s, want 10", code)
			}
			orbits := ts.sw.Lot().Orbits()
			if len(orbits) != 1 || orbits[0].Parker.User != "1002" || orbits[0].ParkedParty.User != "1001" || orbits[0].State != park.StateParked {
				t.Fatalf("orbits = %+v", orbits)
			}
			// Not one packet or INFO of the code reached Alice.
			if n := a.RTPReceivedPT(eventPT); n != 0 || a.DTMFReceived() != "" {
				t.Errorf("the parked party got %d telephone-event packets (%q)", n, a.DTMFReceived())
			}
			if got := infoDigits(a, 100*time.Millisecond); got != "" {
				t.Errorf("the parked party got DTMF INFOs %q", got)
			}

			c, err := carol.Dial(ctx, code)
			if err != nil {
				t.Fatalf("retrieve %s: %v", code, err)
			}
			nextReInvite(t, a, "parked party on retrieve")
			talk(t, ctx, a, c, 30)
			hangUp(t, ctx, c, a, "retrieved party")
		})
	}
}

// TestDTMFParkByCaller: the caller keys the code and parks the callee;
// after a retrieve the retriever can park again by DTMF.
func TestDTMFParkByCaller(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")

	a, b := call(t, ctx, alice, bob, "1002")
	keyRTP(t, ctx, a, "#72")
	code := dtmfParked(t, alice, a, b)
	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v", code, err)
	}
	nextReInvite(t, b, "parked party on retrieve")
	talk(t, ctx, b, c, 10)
	// Carol, now talking to Bob through a new anchor, parks him again.
	keyRTP(t, ctx, c, "#72")
	dtmfParked(t, carol, c, b)
	if n := b.RTPReceivedPT(eventPT); n != 0 {
		t.Errorf("the parked party got %d telephone-event packets", n)
	}
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the orbit to be freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
}

// TestDTMFOtherDigitsPass: digits that are not the code reach the other
// side, those that began like it too, in order, and the call goes on.
func TestDTMFOtherDigitsPass(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) { o.DTMFTimeout = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")

	keyRTP(t, ctx, b, "#5")
	waitUntil(t, 3*time.Second, "#5 at the other side", func() bool { return a.DTMFReceived() == "#5" })
	keyRTP(t, ctx, b, "1#7")
	// No digit after #7: they go on at the timeout (300 ms here).
	waitUntil(t, 3*time.Second, "1#7 at the other side", func() bool { return a.DTMFReceived() == "#51#7" })
	if n := a.RTPReceivedPT(eventPT); n != 4+6+6+4+4 {
		t.Errorf("%d telephone-event packets at the other side, want 24 (withheld ones replayed as 4)", n)
	}
	talk(t, ctx, a, b, 20) // audio through the renumbered stream
	keyInfo(t, ctx, b, "#9")
	keyInfo(t, ctx, b, "*")
	if got := infoDigits(a, time.Second); got != "#9*" {
		t.Errorf("DTMF INFOs at the other side: %q, want #9*", got)
	}
	// application/dtmf, and an INFO that is no digit, pass too.
	if code, err := b.Info(ctx, "application/dtmf", []byte("#")); err != nil || code != 200 {
		t.Fatalf("INFO application/dtmf: %d %v", code, err)
	}
	if got := infoDigits(a, time.Second); got != "#" {
		t.Errorf("a lone # (timed out): %q at the other side", got)
	}
	if code, err := b.Info(ctx, "application/media_control+xml", []byte("<media_control/>")); err != nil || code != 200 {
		t.Fatalf("other INFO: %d %v", code, err)
	}
	select {
	case r := <-a.Infos():
		if ct := r.ContentType(); ct == nil || ct.Value() != "application/media_control+xml" {
			t.Errorf("forwarded INFO has Content-Type %v", ct)
		}
	case <-time.After(3 * time.Second):
		t.Error("a non-DTMF INFO was not forwarded")
	}
	if n := len(ts.sw.Lot().Orbits()); n != 0 {
		t.Errorf("%d orbits after digits that are not the code", n)
	}
	talk(t, ctx, a, b, 10)
	a.Hangup(ctx)
	waitDone(t, b, "callee")
}

// TestDTMFParkRefusals: a user whose policy does not allow park has no
// code (the digits pass); a full range refuses the park, the call goes on
// and the refusal is logged; a configuration without a code passes
// everything.
func TestDTMFParkRefusals(t *testing.T) {
	logs := new(syncBuffer)
	ts := startServerWith(t, serverSetup{logTo: logs})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	dave := phone(t, ctx, ts, "1004", "udp") // Global: no park
	erin := phone(t, ctx, ts, "1005", "udp") // SalesPolicy 500–501
	frank := phone(t, ctx, ts, "1006", "udp")

	t.Run("park not allowed: the digits pass", func(t *testing.T) {
		a, d := call(t, ctx, alice, dave, "1004")
		keyRTP(t, ctx, d, "#72")
		waitUntil(t, 3*time.Second, "#72 at the other side", func() bool { return a.DTMFReceived() == "#72" })
		keyInfo(t, ctx, d, "#72")
		if got := infoDigits(a, time.Second); got != "#72" {
			t.Errorf("INFOs at the other side: %q", got)
		}
		talk(t, ctx, a, d, 10)
		a.Hangup(ctx)
		waitDone(t, d, "callee")
	})
	t.Run("range full: refused, the call goes on", func(t *testing.T) {
		var parked []*siptest.Call
		for range 2 {
			e, f := call(t, ctx, erin, frank, "1006")
			keyRTP(t, ctx, f, "#72")
			dtmfParked(t, frank, f, e)
			parked = append(parked, e)
		}
		e, f := call(t, ctx, erin, frank, "1006")
		keyRTP(t, ctx, f, "#72")
		keyed := time.Now() // the code matched before this
		waitUntil(t, 5*time.Second, "the refusal in the log", func() bool {
			return strings.Contains(logs.String(), `"trigger":"dtmf"`)
		})
		line := ""
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, `"trigger":"dtmf"`) {
				line = l
			}
		}
		for _, want := range []string{`"event":"park_refused"`, `"policy":"SalesPolicy"`, `"user":"1006"`, `"status":503`, `"reason":"` + park.ReasonRangeFull + `"`} {
			if !strings.Contains(line, want) {
				t.Errorf("refusal line lacks %s: %s", want, line)
			}
		}
		if e.DTMFReceived() != "" {
			t.Errorf("the code reached the other side: %q", e.DTMFReceived())
		}
		talk(t, ctx, e, f, 10) // untouched
		// Keyed again at once: one attempt a second per leg, so no
		// second refusal yet; a second later, another.
		keyRTP(t, ctx, f, "#72")
		time.Sleep(200 * time.Millisecond)
		n := strings.Count(logs.String(), `"trigger":"dtmf"`)
		switch {
		case time.Since(keyed) > 900*time.Millisecond:
			t.Logf("keying took too long to check the spacing of attempts (%d refusals)", n)
		case n != 1:
			t.Errorf("%d refusals logged for two codes keyed within a second, want 1", n)
		}
		time.Sleep(time.Second)
		keyRTP(t, ctx, f, "#72")
		waitUntil(t, 5*time.Second, "another refusal", func() bool {
			return strings.Count(logs.String(), `"trigger":"dtmf"`) > n
		})
		if e.DTMFReceived() != "" {
			t.Errorf("the code reached the other side: %q", e.DTMFReceived())
		}
		for _, c := range append(parked, e) {
			c.Hangup(ctx)
		}
		waitDone(t, f, "callee")
	})
	t.Run("reloaded without a code: everything passes", func(t *testing.T) {
		ts.sw.SetParkNumbers(sw.ParkNumbers{ParkUser: "park", DTMFCode: ""})
		a, e := call(t, ctx, alice, erin, "1005")
		keyRTP(t, ctx, e, "#72")
		waitUntil(t, 3*time.Second, "#72 at the other side", func() bool { return a.DTMFReceived() == "#72" })
		ts.sw.SetParkNumbers(sw.ParkNumbers{ParkUser: "park", DTMFCode: "*9"})
		keyRTP(t, ctx, e, "#72*9")
		a0 := a.DTMFReceived()
		dtmfParked(t, erin, e, a)
		if a0 != "#72#72" || a.DTMFReceived() != a0 {
			t.Errorf("the other side heard %q, want #72#72 and not *9", a.DTMFReceived())
		}
		a.Hangup(ctx)
	})
}

// TestDTMFParkINFOVariants: the INFO bodies phones send for * and #.
func TestDTMFParkINFOVariants(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	for _, body := range []struct{ ct, body string }{
		{"application/dtmf-relay", "Signal=11\r\nDuration=100\r\n"}, // # as its event code
		{"application/dtmf", "7"},
		{"Application/DTMF-Relay;charset=utf-8", "signal= 2\r\nduration=160\r\n"},
	} {
		if code, err := b.Info(ctx, body.ct, []byte(body.body)); err != nil || code != 200 {
			t.Fatalf("INFO %q: %d %v", body.body, code, err)
		}
	}
	dtmfParked(t, bob, b, a)
	if got := infoDigits(a, 100*time.Millisecond); got != "" {
		t.Errorf("the parked party got DTMF INFOs %q", got)
	}
	a.Hangup(ctx)
}

// TestBinaryDTMFPark runs the real binary: with park.dtmf_code "*9" the
// digits #72 pass to the other side; after the file is changed to the
// default #72 and reloaded (SIGHUP), keying #72 in the same call parks
// the other party, a retrieve talks to it both ways, and the switch is
// left with no call, dialog or RTP port.
func TestBinaryDTMFPark(t *testing.T) {
	dir := t.TempDir()
	cfgPath, sipAddr, api := restartConfig(t, dir)
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withCode := strings.Replace(string(data), "park:\n", "park:\n  dtmf_code: \"*9\"\n", 1)
	writeFile(t, cfgPath, withCode)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, logs := serveBinary(t, ctx, cfgPath, api)

	alice := phoneAt(t, ctx, sipAddr, "1001", "udp")
	bob := phoneAt(t, ctx, sipAddr, "1002", "udp")
	carol := phoneAt(t, ctx, sipAddr, "1003", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	keyRTP(t, ctx, b, "#72")
	waitUntil(t, 3*time.Second, "#72 at the other side", func() bool { return a.DTMFReceived() == "#72" })

	reloads := strings.Count(logs.String(), "configuration reloaded")
	writeFile(t, cfgPath, string(data)) // dtmf_code absent: #72
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 5*time.Second, "the reload", func() bool {
		return strings.Count(logs.String(), "configuration reloaded") > reloads
	})
	talk(t, ctx, a, b, 10)
	keyRTP(t, ctx, b, "#72")
	code := dtmfParked(t, bob, b, a)
	if a.DTMFReceived() != "#72" {
		t.Errorf("the parked party heard %q, want only the first #72", a.DTMFReceived())
	}
	if orbits := getOrbits(t, api); len(orbits) != 1 || strconv.Itoa(orbits[0].Code) != code || orbits[0].Parker.User != "1002" {
		t.Fatalf("orbits = %+v", orbits)
	}
	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v\n%s", code, err, tail(logs.String(), 3000))
	}
	nextReInvite(t, a, "parked party on retrieve")
	talk(t, ctx, a, c, 30)
	hangUp(t, ctx, a, c, "retriever")
	waitUntil(t, 5*time.Second, "no call, dialog or RTP port left", func() bool {
		m := metricsText(t, api)
		return strings.Contains(m, "parkswitch_calls_active 0") && strings.Contains(m, "parkswitch_dialogs 0") &&
			strings.Contains(m, "parkswitch_rtp_ports_in_use 0")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, tail(logs.String(), 3000))
	}
}

// metricsText reads the binary's /metrics.
func metricsText(t *testing.T, api string) string {
	t.Helper()
	res, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDTMFParkPayloadTypes: each leg's telephone-event number is its
// own. Bob answers with 96 for Alice's 101, so Alice sends events as 96
// and Bob as 101; either parks the other.
func TestDTMFParkPayloadTypes(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	to96 := strings.NewReplacer(" 101\r\n", " 96\r\n", "a=rtpmap:101 ", "a=rtpmap:96 ", "a=fmtp:101 ", "a=fmtp:96 ")
	bob, err := siptest.NewPhone(ctx, siptest.Config{
		User: "1002", Password: "demo1002", Domain: testDomain, Server: ts.udpAddr(),
		EditSDP: func(b []byte) []byte { return []byte(to96.Replace(string(b))) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	if err := bob.Register(ctx, 300); err != nil {
		t.Fatal(err)
	}
	for _, keyer := range []string{"caller", "callee"} {
		a, b := call(t, ctx, alice, bob, "1002")
		if !strings.Contains(string(a.RemoteSDP()), "a=rtpmap:96 telephone-event") {
			t.Fatalf("the caller was not given 96:\n%s", a.RemoteSDP())
		}
		parker, parked, parkerPhone, pt := a, b, alice, uint8(96)
		if keyer == "callee" {
			parker, parked, parkerPhone, pt = b, a, bob, eventPT
		}
		keyRTP(t, ctx, parker, "#72")
		dtmfParked(t, parkerPhone, parker, parked)
		if n := parked.RTPReceivedPT(pt); n != 0 {
			t.Errorf("%s keyed: the parked party got %d packets of type %d", keyer, n, pt)
		}
		parked.Hangup(ctx)
		waitUntil(t, 5*time.Second, "the orbit to be freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
	}
}
