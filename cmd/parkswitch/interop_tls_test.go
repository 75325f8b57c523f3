package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteropBaresipTLS: baresip registers over TLS (verifying the
// switch's certificate against the test CA), calls another baresip over
// TLS with audio both ways, and is called over the connection it opened.
func TestInteropBaresipTLS(t *testing.T) {
	requireBaresip(t)
	ts := startTLSServer(t, serverSetup{})
	ca := filepath.Join(filepath.Dir(ts.cfg.Path), "cert.pem")
	tlsAddr := ts.sw.Addr("tls").String()
	start := func(user string) *baresipPhone {
		b := launchBaresipWith(t, user, fmt.Sprintf("<sip:%s@%s;transport=tls>", user, tlsAddr), "sip_cafile\t\t"+ca+"\n")
		waitUntil(t, 5*time.Second, "baresip "+user+" to register over TLS", func() bool {
			for _, r := range ts.sw.Registrations() {
				if r.User == user && r.Transport == "TLS" {
					return true
				}
			}
			return false
		})
		if t.Failed() {
			t.FailNow()
		}
		return b
	}
	alice, bob := start("1001"), start("1002")
	am, bm := alice.mark(), bob.mark()
	alice.do("dial", "1002")
	bob.expect(&bm, "CALL_ESTABLISHED")
	alice.expect(&am, "CALL_ESTABLISHED")
	alice.hears(25, "audio from the callee over a TLS-signalled call")
	bob.hears(25, "audio from the caller over a TLS-signalled call")
	if inv := bob.findSIP("INVITE sip:"); inv == "" || !strings.Contains(strings.ToLower(inv), "transport=tls") {
		t.Errorf("the callee's INVITE does not carry the switch's TLS contact:\n%s", inv)
	}
	alice.do("hangup", "")
	alice.expect(&am, "CALL_CLOSED")
	bob.expect(&bm, "CALL_CLOSED")
	waitUntil(t, 3*time.Second, "the call to end in the switch", func() bool { return ts.sw.ActiveCalls() == 0 })
}
