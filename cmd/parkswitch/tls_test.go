package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

var testCert struct {
	once sync.Once
	cert *siptest.TestCert
	err  error
}

// tlsCert is a self-signed pair generated once per test run (never a
// committed key).
func tlsCert(t testing.TB) *siptest.TestCert {
	t.Helper()
	testCert.once.Do(func() { testCert.cert, testCert.err = siptest.NewTestCert() })
	if testCert.err != nil {
		t.Fatal(testCert.err)
	}
	return testCert.cert
}

// startTLSServer runs the switch on UDP, TCP and TLS with the test
// certificate, loaded through server.tls_cert and tls_key.
func startTLSServer(t testing.TB, setup serverSetup) *testServer {
	t.Helper()
	tc := tlsCert(t)
	setup.serverYAML += "  tls_cert: cert.pem\n  tls_key: key.pem\n"
	if setup.files == nil {
		setup.files = map[string]string{}
	}
	setup.files["cert.pem"], setup.files["key.pem"] = string(tc.CertPEM), string(tc.KeyPEM)
	if setup.listens == nil {
		setup.listens = []config.Listen{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}, {Network: "tls", Addr: "127.0.0.1:0"}}
	}
	return startServerWith(t, setup)
}

// tlsPhone starts a phone that registers over TLS. It has a TLS listener
// of its own and counts what connects to it: the switch must call it over
// the connection it registered on instead (a phone behind NAT accepts none).
func tlsPhone(t testing.TB, ctx context.Context, ts *testServer, user string, sips bool) *siptest.Phone {
	t.Helper()
	p, err := siptest.NewPhone(ctx, siptest.Config{
		User: user, Password: "demo" + user, Domain: testDomain, Server: ts.sw.Addr("tls").String(),
		Transport: "tls", TLS: tlsCert(t).ServerConfig(), SIPS: sips,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("phone", user).Logger(),
	})
	if err != nil {
		t.Fatalf("phone %s: %v", user, err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Register(ctx, 300); err != nil {
		t.Fatalf("register %s over TLS: %v", user, err)
	}
	return p
}

// TestTLSCall: phones register over TLS (transport=tls and sips: contacts),
// call each other with RTP both ways through the relay, and are called
// back over the connection they registered on; a UDP phone and a TLS
// phone call each other too.
func TestTLSCall(t *testing.T) {
	for _, sips := range []bool{false, true} {
		name := "transport=tls"
		if sips {
			name = "sips"
		}
		t.Run(name, func(t *testing.T) {
			ts := startTLSServer(t, serverSetup{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			alice := tlsPhone(t, ctx, ts, "1001", sips)
			bob := tlsPhone(t, ctx, ts, "1002", sips)
			carol := phone(t, ctx, ts, "1003", "udp")

			var regs []struct{ User, Transport string }
			if err := json.Unmarshal([]byte(getText(t, "http://"+ts.httpAddr()+"/api/v1/registrations")), &regs); err != nil {
				t.Fatal(err)
			}
			for _, r := range regs {
				if want := map[string]string{"1001": "tls", "1002": "tls", "1003": "udp"}[r.User]; r.Transport != want {
					t.Errorf("registration of %s: transport %q, want %q", r.User, r.Transport, want)
				}
			}

			callee := make(chan *siptest.Call, 1)
			incoming := make(chan *siptest.Incoming, 1)
			go func() {
				select {
				case in := <-bob.Incoming():
					incoming <- in
					c, err := in.Answer(ctx)
					if err != nil {
						t.Errorf("answer: %v", err)
					}
					callee <- c
				case <-ctx.Done():
					callee <- nil
				}
			}()
			a, err := alice.Dial(ctx, "1002")
			if err != nil {
				t.Fatalf("dial over TLS: %v", err)
			}
			b := <-callee
			if b == nil {
				t.FailNow()
			}
			in := <-incoming
			// Both legs' dialogs stay on TLS: the switch's Contact says so.
			for who, contact := range map[string]string{
				"caller's 200":    a.FinalResponse().Contact().Address.String(),
				"callee's INVITE": in.Req.Contact().Address.String(),
			} {
				switch {
				case !strings.Contains(contact, ts.sw.Addr("tls").String()):
					t.Errorf("switch Contact in the %s is %s, want the TLS listener", who, contact)
				case sips && !strings.HasPrefix(contact, "sips:"):
					// RFC 3261 §12.1.1: a SIPS dialog's Contact is a SIPS URI.
					t.Errorf("switch Contact in the %s of a SIPS dialog is %s, want a sips: URI", who, contact)
				case !sips && !strings.Contains(contact, "transport=tls"):
					t.Errorf("switch Contact in the %s is %s, want transport=tls", who, contact)
				}
			}
			if got := in.Req.Recipient.Scheme; sips && got != "sips" {
				t.Errorf("INVITE to a sips: contact has Request-URI scheme %q", got)
			}
			talk(t, ctx, a, b, 50)
			if err := a.Hold(ctx); err != nil {
				t.Fatalf("hold over TLS: %v", err)
			}
			if err := a.Resume(ctx); err != nil {
				t.Fatalf("resume over TLS: %v", err)
			}
			if err := b.Hangup(ctx); err != nil {
				t.Fatalf("callee hangup over TLS: %v", err)
			}
			waitDone(t, a, "caller")

			// Mixed transports: UDP calls TLS, the switch bridges them.
			go func() { callee <- answerNext(t, ctx, alice) }()
			c, err := carol.Dial(ctx, "1001")
			if err != nil {
				t.Fatalf("UDP to TLS dial: %v", err)
			}
			a2 := <-callee
			if a2 == nil {
				t.FailNow()
			}
			talk(t, ctx, c, a2, 30)
			if err := c.Hangup(ctx); err != nil {
				t.Fatalf("hangup: %v", err)
			}
			waitDone(t, a2, "TLS callee")

			if n := alice.Accepted() + bob.Accepted(); n != 0 {
				t.Errorf("the switch opened %d new connections to the phones instead of reusing theirs", n)
			}
		})
	}
}

// TestTLSConfigCheck: a tls:// listener without a certificate, or with
// files that do not load, is an error with its file and line.
func TestTLSConfigCheck(t *testing.T) {
	tc := tlsCert(t)
	dir := t.TempDir()
	writeFile(t, dir+"/policies.yaml", basePolicies)
	writeFile(t, dir+"/cert.pem", string(tc.CertPEM))
	writeFile(t, dir+"/key.pem", string(tc.KeyPEM))
	writeFile(t, dir+"/garbage.pem", "not a key\n")
	cases := []struct {
		name, server, want string
	}{
		{"no certificate", `  sip_listen: ["tls://127.0.0.1:5061"]` + "\n", "parkswitch.yaml:3: a tls:// listener needs a certificate"},
		{"key without cert", "  tls_key: key.pem\n", "parkswitch.yaml:3: tls_key is set without tls_cert"},
		{"missing file", "  tls_cert: nope.pem\n  tls_key: key.pem\n", "parkswitch.yaml:3: tls_cert " + dir + "/nope.pem cannot be read"},
		{"not a key", "  tls_cert: cert.pem\n  tls_key: garbage.pem\n", "parkswitch.yaml:3: tls_cert " + dir + "/cert.pem and tls_key " + dir + "/garbage.pem do not load"},
		{"unknown key", "  tls_certificate: cert.pem\n", "parkswitch.yaml:3:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := dir + "/parkswitch.yaml"
			writeFile(t, path, "server:\n  domain: contoso.com\n"+c.server)
			_, err := config.Load(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("config error %v, want %q", err, c.want)
			}
		})
	}
	path := dir + "/parkswitch.yaml"
	writeFile(t, path, "server:\n  domain: contoso.com\n  sip_listen: [\"tls://127.0.0.1:5061\"]\n  tls_cert: cert.pem\n  tls_key: key.pem\nsecurity:\n  max_connections: 0\n")
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "parkswitch.yaml:7: max_connections 0 is out of range") {
		t.Errorf("max_connections 0: %v", err)
	}
	writeFile(t, path, "server:\n  domain: contoso.com\n  sip_listen: [\"tls://127.0.0.1:5061\"]\n  tls_cert: cert.pem\n  tls_key: key.pem\nsecurity:\n  max_connections: 50\n  max_connections_per_ip: 5\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("valid TLS configuration refused: %v", err)
	}
	if cfg.Server.Certificate == nil || cfg.Security.MaxConnections != 50 || cfg.Security.MaxConnectionsPerIP != 5 {
		t.Errorf("loaded %+v %+v", cfg.Server, cfg.Security)
	}
}

// TestTLSTrunk: a user dials out through a trunk with transport: tls; the
// switch opens a TLS connection to the trunk, verifying its certificate.
func TestTLSTrunk(t *testing.T) {
	tc := tlsCert(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	trunk, err := siptest.NewPhone(ctx, siptest.Config{
		User: "carrier", Domain: "127.0.0.2", Transport: "tls", TLS: tc.ServerConfig(), ListenIP: "127.0.0.2",
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trunk.Close() })
	trunk.AutoAnswer(true)
	ts := startTLSServer(t, serverSetup{
		extraYAML: "trunks:\n  - name: carrier\n    address: " + trunk.Addr().String() + "\n    transport: tls\n    outbound_prefix: \"9\"\n",
		tune:      func(o *sip.Options) { o.TLSClient = tc.ClientConfig() },
	})
	alice := phone(t, ctx, ts, "1001", "udp")
	a, err := alice.Dial(ctx, "94155550100")
	if err != nil {
		t.Fatalf("dial out over the TLS trunk: %v", err)
	}
	var b *siptest.Call
	select {
	case b = <-trunk.Answered():
	case <-ctx.Done():
		t.Fatal("the trunk got no call")
	}
	talk(t, ctx, a, b, 30)
	if trunk.Accepted() != 1 {
		t.Errorf("the trunk accepted %d connections, want the switch's one TLS connection", trunk.Accepted())
	}
	hangUp(t, ctx, a, b, "trunk leg")
}
