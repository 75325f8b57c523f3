package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// keyedPhone is phone() for a phone whose offers carry an SDES key, edited
// in by edit.
func keyedPhone(t *testing.T, ctx context.Context, ts *testServer, user, transport string, edit func([]byte) []byte) *siptest.Phone {
	t.Helper()
	server := ts.udpAddr()
	if transport == "tcp" {
		server = ts.tcpAddr()
	}
	p, err := siptest.NewPhone(ctx, siptest.Config{
		User: user, Password: "demo" + user, Domain: testDomain, Server: server, Transport: transport,
		Logger:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("phone", user).Logger(),
		EditSDP: edit,
	})
	if err != nil {
		t.Fatalf("phone %s: %v", user, err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Register(ctx, 300); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return p
}

// cryptoLine is an a=crypto with a fresh key, and the key's inline text.
func cryptoLine(t *testing.T) (line, inline string) {
	t.Helper()
	k, err := media.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	attr := media.Crypto{Tag: 1, Key: k}.Attribute()
	return "a=crypto:" + attr + "\r\n", strings.Fields(attr)[2]
}

// addCrypto puts line on the offer's audio stream and sets its profile.
func addCrypto(offer []byte, proto, line string) []byte {
	s := strings.Replace(string(offer), " RTP/AVP ", " "+proto+" ", 1)
	return []byte(strings.Replace(s, "a=ptime:", line+"a=ptime:", 1))
}

// TestSDESOverPlainTransport: an a=crypto offer that came over UDP or TCP
// is answered with plain RTP/AVP and no key when it also offers RTP/AVP,
// and 488 when it offers only RTP/SAVP. The far leg never sees the key,
// and audio flows in clear through the relay.
func TestSDESOverPlainTransport(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport+"/best-effort RTP/AVP with a=crypto", func(t *testing.T) {
			line, inline := cryptoLine(t)
			plainCall(t, transport, inline, func(o []byte) []byte { return addCrypto(o, "RTP/AVP", line) })
		})
		t.Run(transport+"/RTP/SAVP and an RTP/AVP alternative", func(t *testing.T) {
			line, inline := cryptoLine(t)
			plainCall(t, transport, inline, func(o []byte) []byte {
				s := string(o)
				i := strings.Index(s, "m=audio")
				savp := addCrypto([]byte(s[i:]), "RTP/SAVP", line)
				// The SRTP stream first, at another port; the plain one second.
				savp = regexp.MustCompile(`^m=audio \d+ `).ReplaceAll(savp, []byte("m=audio 9000 "))
				return []byte(s[:i] + string(savp) + s[i:])
			})
		})
		t.Run(transport+"/RTP/SAVP only", func(t *testing.T) {
			ts := startServer(t, "", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			line, _ := cryptoLine(t)
			alice := keyedPhone(t, ctx, ts, "1001", transport, func(o []byte) []byte { return addCrypto(o, "RTP/SAVP", line) })
			bob := phone(t, ctx, ts, "1002", transport)
			_, err := alice.Dial(ctx, "1002")
			if code := siptest.StatusCode(err); code != 488 {
				t.Fatalf("SRTP-only offer over %s: %v (status %d), want 488", transport, err, code)
			}
			select {
			case in := <-bob.Incoming():
				t.Fatalf("the callee was rung with %q", in.Req.Body())
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// plainCall dials 1002 from a phone whose offer edit adds a key, and checks
// that neither the answer nor the callee's offer carries a key, that both
// are RTP/AVP, and that audio flows.
func plainCall(t *testing.T, transport, inline string, edit func([]byte) []byte) {
	t.Helper()
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := keyedPhone(t, ctx, ts, "1001", transport, edit)
	bob := phone(t, ctx, ts, "1002", transport)
	a, b := call(t, ctx, alice, bob, "1002")
	if sent := string(a.LocalSDP()); !strings.Contains(sent, inline) {
		t.Fatalf("the test phone did not offer its key:\n%s", sent)
	}
	for who, body := range map[string][]byte{"answer to the caller": a.RemoteSDP(), "offer to the callee": b.LastRemoteOffer()} {
		s := string(body)
		if strings.Contains(s, "a=crypto") || strings.Contains(s, inline) {
			t.Errorf("%s carries a key:\n%s", who, s)
		}
		if !strings.Contains(s, "RTP/AVP") {
			t.Errorf("%s is not RTP/AVP:\n%s", who, s)
		}
	}
	if strings.Contains(string(a.RemoteSDP()), "m=audio 9000") || strings.Contains(string(b.LastRemoteOffer()), "m=audio 9000") {
		t.Errorf("the answer accepted the SRTP stream:\n%s", a.RemoteSDP())
	}
	talk(t, ctx, a, b, 20)
	hangUp(t, ctx, a, b, "callee")
}
