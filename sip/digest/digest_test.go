package digest

import (
	"cmp"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	client "github.com/icholy/digest"

	"github.com/parkswitch/parkswitch/sip/internal/testclock"
)

const (
	testRealm = "pbx.example.com"
	regURI    = "sip:pbx.example.com"
)

func md5hex(s string) string {
	b := md5.Sum([]byte(s))
	return hex.EncodeToString(b[:])
}

func sha256hex(s string) string {
	b := sha256.Sum256([]byte(s))
	return hex.EncodeToString(b[:])
}

var users = map[string]Credential{
	"alice": {Username: "alice", Password: "wonderland"},
	"bob":   {Username: "bob", HA1MD5: strings.ToUpper(md5hex("bob:" + testRealm + ":builder"))},
	"carol": {Username: "carol", HA1SHA256: sha256hex("carol:" + testRealm + ":singer")},
	"dave":  {Username: "David", Password: "dave"}, // store maps a different name
	"erin":  {Username: "erin", Realm: "other.example.com", Password: "e"},
	"frank": {Username: "frank", Realm: testRealm, Password: "f"},
}

func lookup(name string) (Credential, bool) {
	c, ok := users[name]
	return c, ok
}

func newTestServer() (*Server, *testclock.Clock) {
	c := testclock.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	return NewServer(testRealm, []byte("test secret"), time.Minute, c.Now), c
}

// answer builds the Authorization value a sipgo client sends for one of
// the server's challenges: sipgo takes the first WWW-Authenticate value,
// upper-cases its algorithm and answers with icholy/digest, using the
// Request-URI without parameters as digest uri.
func answer(t *testing.T, chal, method, uri, user, password string, count int) string {
	t.Helper()
	c, err := client.ParseChallenge(chal)
	if err != nil {
		t.Fatalf("client cannot parse %q: %v", chal, err)
	}
	c.Algorithm = strings.ToUpper(c.Algorithm)
	cred, err := client.Digest(c, client.Options{Method: method, URI: uri, Username: user, Password: password, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}

func TestRFCVectors(t *testing.T) {
	tests := []struct {
		name, realm, header, method, password string
	}{
		{
			name:     "RFC 2617 3.5 MD5",
			realm:    "testrealm@host.com",
			method:   "GET",
			password: "Circle Of Life",
			header: `Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ` +
				`uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", ` +
				`response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
		},
		{
			name:     "RFC 7616 3.9.1 SHA-256",
			realm:    "http-auth@example.org",
			method:   "GET",
			password: "Circle of Life",
			header: `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, ` +
				`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, ` +
				`cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, ` +
				`response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", ` +
				`opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		},
		{
			name:     "RFC 7616 3.9.1 MD5",
			realm:    "http-auth@example.org",
			method:   "GET",
			password: "Circle of Life",
			header: `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, ` +
				`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, ` +
				`cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, ` +
				`response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The nonces are not this server's: no verdict, whatever the
			// password, and the client is told to retry with a fresh one.
			s := NewServer(tc.realm, nil, 0, nil)
			for _, pw := range []string{tc.password, "Circle of Death"} {
				user, err := s.Verify(tc.header, tc.method, "/dir/index.html", func(u string) (Credential, bool) {
					return Credential{Username: u, Password: pw}, u == "Mufasa"
				})
				if user != "Mufasa" || !errors.Is(err, ErrStaleNonce) {
					t.Errorf("password %q: %q, %v; want Mufasa, ErrStaleNonce", pw, user, err)
				}
			}
			// The arithmetic, from the password and from an HA1.
			p, err := parseCredentials(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			alg := algorithms[strings.ToUpper(p["algorithm"])]
			h := alg.hash()
			ha1s := []string{hexHash(h, "Mufasa", tc.realm, tc.password)}
			if alg.family == "MD5" {
				ha1s = append(ha1s, md5hex("Mufasa:"+tc.realm+":"+tc.password))
			}
			for _, ha1 := range ha1s {
				got := response(h, alg.sess, ha1, p["nonce"], p["nc"], p["cnonce"], p["qop"], tc.method, p["uri"])
				if got != p["response"] {
					t.Errorf("response = %s, want %s", got, p["response"])
				}
			}
			if got := response(h, alg.sess, hexHash(h, "Mufasa", tc.realm, "Circle of Death"), p["nonce"], p["nc"], p["cnonce"], p["qop"], tc.method, p["uri"]); got == p["response"] {
				t.Error("a wrong password gives the right response")
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	s, _ := newTestServer()
	for _, stale := range []bool{false, true} {
		ch := s.Challenge(stale)
		if len(ch) != 2 {
			t.Fatalf("got %d challenges", len(ch))
		}
		var nonces []string
		for i, want := range []string{"MD5", "SHA-256"} {
			c, err := client.ParseChallenge(ch[i])
			if err != nil {
				t.Fatalf("%q: %v", ch[i], err)
			}
			if c.Algorithm != want || c.Realm != testRealm || !c.SupportsQOP("auth") || len(c.QOP) != 1 ||
				c.Stale != stale || c.Opaque == "" || c.Nonce == "" {
				t.Errorf("challenge %d = %q", i, ch[i])
			}
			nonces = append(nonces, c.Nonce)
		}
		if nonces[0] != nonces[1] {
			t.Errorf("one nonce expected per challenge set: %v", nonces)
		}
	}
	if a, b := s.Challenge(false)[0], s.Challenge(false)[0]; a == b {
		t.Error("nonces repeat")
	}
	q := NewServer(`a "quoted" \realm`, nil, 0, nil).Challenge(false)[0]
	if c, err := client.ParseChallenge(q); err != nil || c.Realm != `a "quoted" \realm` {
		t.Errorf("realm quoting: %q -> %+v, %v", q, c, err)
	}
}

func TestVerify(t *testing.T) {
	// A step verifies header for method (default REGISTER) and uri
	// (default regURI) after moving the clock by advance.
	type step struct {
		header, method, uri string
		advance             time.Duration
		wantUser            string
		wantErr             error
	}
	other := NewServer(testRealm, []byte("another secret"), time.Minute, nil)
	md, sha := 0, 1

	tests := []struct {
		name  string
		steps func(t *testing.T, next func() []string) []step
	}{
		{"sha-256", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1), wantUser: "alice"}}
		}},
		{"md5", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[md], "REGISTER", regURI, "alice", "wonderland", 1), wantUser: "alice"}}
		}},
		{"md5 ha1 only", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[md], "REGISTER", regURI, "bob", "builder", 1), wantUser: "bob"}}
		}},
		{"sha-256 with md5 ha1 only", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[sha], "REGISTER", regURI, "bob", "builder", 1), wantUser: "bob", wantErr: ErrBadCredentials}}
		}},
		{"sha-256 ha1 only", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[sha], "REGISTER", regURI, "carol", "singer", 1), wantUser: "carol"}}
		}},
		{"credential realm must match", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{
				{header: answer(t, ch[md], "REGISTER", regURI, "erin", "e", 1), wantUser: "erin", wantErr: ErrBadCredentials},
				{header: answer(t, next()[md], "REGISTER", regURI, "frank", "f", 1), wantUser: "frank"},
			}
		}},
		{"md5-sess", func(t *testing.T, next func() []string) []step {
			ch := next()
			c, _ := client.ParseChallenge(ch[md])
			sess := func(alg string, h func(string) string) string {
				ha1 := h(h("alice:"+testRealm+":wonderland") + ":" + c.Nonce + ":abc")
				resp := h(ha1 + ":" + c.Nonce + ":00000001:abc:auth:" + h("INVITE:sip:1001@pbx.example.com"))
				return fmt.Sprintf(`Digest username="alice", realm=%q, nonce=%q, uri="sip:1001@pbx.example.com", `+
					`algorithm=%s, qop=auth, nc=00000001, cnonce="abc", opaque=%q, response=%q`, testRealm, c.Nonce, alg, c.Opaque, resp)
			}
			return []step{
				{header: sess("MD5-sess", md5hex), method: "INVITE", uri: "sip:1001@pbx.example.com", wantUser: "alice"},
				// Same nonce and nc: a replay, even with another algorithm.
				{header: sess("SHA-256-sess", sha256hex), method: "INVITE", uri: "sip:1001@pbx.example.com", wantUser: "alice", wantErr: ErrStaleNonce},
			}
		}},
		{"no qop (RFC 2069) can be repeated", func(t *testing.T, next func() []string) []step {
			ch := next()
			c, _ := client.ParseChallenge(ch[md])
			c.QOP = nil
			cred, err := client.Digest(c, client.Options{Method: "REGISTER", URI: regURI, Username: "alice", Password: "wonderland"})
			if err != nil {
				t.Fatal(err)
			}
			h := cred.String()
			return []step{{header: h, wantUser: "alice"}, {header: h, wantUser: "alice"}}
		}},
		{"wrong password and unknown user look alike", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "guess", 1), wantUser: "alice", wantErr: ErrBadCredentials},
				{header: answer(t, next()[sha], "REGISTER", regURI, "mallory", "guess", 1), wantUser: "mallory", wantErr: ErrBadCredentials},
				{header: answer(t, next()[md], "REGISTER", regURI, "bob", "guess", 1), wantUser: "bob", wantErr: ErrBadCredentials},
			}
		}},
		{"lookup returns another user name", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[md], "REGISTER", regURI, "dave", "dave", 1), wantUser: "dave", wantErr: ErrBadCredentials}}
		}},
		{"uri loosely equal", func(t *testing.T, next func() []string) []step {
			ch := next()
			inv := func(uri string, nc int) string { return answer(t, ch[sha], "INVITE", uri, "alice", "wonderland", nc) }
			return []step{
				{header: inv("sip:1001@PBX.example.com", 1), method: "INVITE", uri: "sip:1001@pbx.example.com:5060;transport=tcp", wantUser: "alice"},
				{header: inv("sips:1001@pbx.example.com", 2), method: "INVITE", uri: "sips:1001@pbx.example.com:5061", wantUser: "alice"},
				{header: inv("sip:%31001@pbx.example.com", 3), method: "INVITE", uri: "sip:1001@pbx.example.com", wantUser: "alice"},
				{header: inv("tel:+1001", 4), method: "INVITE", uri: "tel:+1001", wantUser: "alice"},
			}
		}},
		{"uri of another request", func(t *testing.T, next func() []string) []step {
			ch := next()
			_ = ch
			inv := func(uri string, nc int) string {
				return answer(t, next()[sha], "INVITE", uri, "alice", "wonderland", nc)
			}
			const target = "sip:1001@pbx.example.com"
			return []step{
				{header: inv("sip:1002@pbx.example.com", 1), method: "INVITE", uri: target, wantUser: "alice", wantErr: ErrBadCredentials},
				{header: inv("sip:1001@pbx.example.com:5070", 2), method: "INVITE", uri: target, wantUser: "alice", wantErr: ErrBadCredentials},
				{header: inv("sips:1001@pbx.example.com", 3), method: "INVITE", uri: target, wantUser: "alice", wantErr: ErrBadCredentials},
				{header: inv("sip:1001@pbx2.example.com", 4), method: "INVITE", uri: target, wantUser: "alice", wantErr: ErrBadCredentials},
				{header: inv("tel:+1001", 5), method: "INVITE", uri: "tel:1001", wantUser: "alice", wantErr: ErrBadCredentials},
			}
		}},
		{"method is covered", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[sha], "INVITE", regURI, "alice", "wonderland", 1), wantUser: "alice", wantErr: ErrBadCredentials}}
		}},
		{"expired nonce", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1), advance: 61 * time.Second, wantUser: "alice", wantErr: ErrStaleNonce},
				// An expired nonce gets no verdict on the password either.
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "guess", 2), wantUser: "alice", wantErr: ErrStaleNonce},
			}
		}},
		{"nonce from the future", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1), advance: -2 * time.Minute, wantUser: "alice", wantErr: ErrStaleNonce}}
		}},
		{"forged nonce", func(t *testing.T, next func() []string) []step {
			ch := next()
			c, _ := client.ParseChallenge(ch[sha])
			raw, _ := base64.RawURLEncoding.DecodeString(c.Nonce)
			raw[0] ^= 1 // move the timestamp; the MAC no longer matches
			forged := base64.RawURLEncoding.EncodeToString(raw)
			sign := func(nonce, pw string) string {
				c := *c
				c.Nonce = nonce
				cred, _ := client.Digest(&c, client.Options{Method: "REGISTER", URI: regURI, Username: "alice", Password: pw, Count: 1})
				return cred.String()
			}
			return []step{
				{header: sign(forged, "wonderland"), wantUser: "alice", wantErr: ErrStaleNonce},
				// Checked before the password: a guess on a forged nonce
				// is not judged.
				{header: sign(forged, "guess"), wantUser: "alice", wantErr: ErrStaleNonce},
				{header: sign("bm90IGEgbm9uY2U", "wonderland"), wantUser: "alice", wantErr: ErrStaleNonce},
				{header: sign("!!!", "guess"), wantUser: "alice", wantErr: ErrStaleNonce},
				{header: sign(forged, "guess"), uri: "sip:other@pbx.example.com", wantUser: "alice", wantErr: ErrStaleNonce},
			}
		}},
		{"nonce of a server with another secret", func(t *testing.T, _ func() []string) []step {
			return []step{{header: answer(t, other.Challenge(false)[0], "REGISTER", regURI, "alice", "wonderland", 1), wantUser: "alice", wantErr: ErrStaleNonce}}
		}},
		{"opaque changed", func(t *testing.T, next func() []string) []step {
			ch := next()
			h := answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1)
			c, _ := client.ParseChallenge(ch[sha])
			return []step{{header: strings.Replace(h, c.Opaque, c.Opaque+"x", 1), wantUser: "alice", wantErr: ErrStaleNonce}}
		}},
		{"replayed and reordered nonce counts", func(t *testing.T, next func() []string) []step {
			ch := next()
			one := answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1)
			return []step{
				{header: one, wantUser: "alice"},
				{header: one, wantUser: "alice", wantErr: ErrStaleNonce},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 3), wantUser: "alice"},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 2), wantUser: "alice"},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 2), wantUser: "alice", wantErr: ErrStaleNonce},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 200), wantUser: "alice"},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 100), wantUser: "alice", wantErr: ErrStaleNonce},
			}
		}},
		{"a failed response spends its nonce", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "guess", 1), wantUser: "alice", wantErr: ErrBadCredentials},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 2), wantUser: "alice", wantErr: ErrStaleNonce},
				{header: answer(t, ch[md], "REGISTER", regURI, "mallory", "guess", 3), wantUser: "mallory", wantErr: ErrStaleNonce},
			}
		}},
		{"a replayed count is not judged", func(t *testing.T, next func() []string) []step {
			ch := next()
			return []step{
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1), wantUser: "alice"},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "guess", 1), wantUser: "alice", wantErr: ErrStaleNonce},
				{header: answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 2), wantUser: "alice"},
			}
		}},
		{"other realm", func(t *testing.T, next func() []string) []step {
			ch := next()
			h := answer(t, ch[sha], "REGISTER", regURI, "alice", "wonderland", 1)
			return []step{{header: strings.Replace(h, testRealm, "other.example.com", 1), wantUser: "alice", wantErr: ErrNoCredentials}}
		}},
		{"lenient syntax", func(t *testing.T, next func() []string) []step {
			ch := next()
			c, _ := client.ParseChallenge(ch[md])
			ha1 := md5hex("alice:" + testRealm + ":wonderland")
			resp := md5hex(ha1 + ":" + c.Nonce + ":00000001:xyz:auth:" + md5hex("REGISTER:"+regURI))
			h := fmt.Sprintf("digest\tUserName=\"alice\" ,, Realm=%q,nonce=%q,uri=%q,\tALGORITHM=md5, qop=\"auth\", nc=00000001, cnonce=xyz, response=%q",
				testRealm, c.Nonce, regURI, strings.ToUpper(resp))
			return []step{{header: h, wantUser: "alice"}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testclock.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
			s := NewServer(testRealm, []byte("test secret"), time.Minute, c.Now)
			for i, st := range tc.steps(t, func() []string { return s.Challenge(false) }) {
				c.Advance(st.advance)
				method, uri := cmp.Or(st.method, "REGISTER"), cmp.Or(st.uri, regURI)
				user, err := s.Verify(st.header, method, uri, lookup)
				if user != st.wantUser || err != st.wantErr {
					t.Errorf("step %d: Verify = %q, %v; want %q, %v\n%s", i, user, err, st.wantUser, st.wantErr, st.header)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	s, _ := newTestServer()
	c, _ := client.ParseChallenge(s.Challenge(false)[0])
	good := fmt.Sprintf(`Digest username="alice", realm=%q, nonce=%q, uri=%q, algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c", response="00"`,
		testRealm, c.Nonce, regURI)
	tests := []struct {
		name, header string
		want         error
	}{
		{"empty", "", ErrNoCredentials},
		{"basic", "Basic YWxpY2U6d29uZGVybGFuZA==", ErrNoCredentials},
		{"scheme only", "Digest", ErrNoCredentials},
		{"no params", "Digest   ", ErrMalformed},
		{"no response", strings.Replace(good, `, response="00"`, "", 1), ErrMalformed},
		{"no username", strings.Replace(good, `username="alice", `, "", 1), ErrMalformed},
		{"repeated param", good + `, realm="x"`, ErrMalformed},
		{"repeated param other case", good + `, Response="01"`, ErrMalformed},
		{"unterminated quote", `Digest username="alice`, ErrMalformed},
		{"trailing backslash", `Digest username="alice\`, ErrMalformed},
		{"no equals", `Digest username "alice"`, ErrMalformed},
		{"junk after value", `Digest username="alice" x`, ErrMalformed},
		{"empty unquoted value", `Digest username=, realm="x"`, ErrMalformed},
		{"bad name", `Digest =x`, ErrMalformed},
		{"auth-int", strings.Replace(good, "qop=auth", "qop=auth-int", 1), ErrMalformed},
		{"unknown qop", strings.Replace(good, "qop=auth", "qop=bogus", 1), ErrMalformed},
		{"sha-1", strings.Replace(good, "SHA-256", "SHA-1", 1), ErrMalformed},
		{"qop without cnonce", strings.Replace(good, `cnonce="c", `, "", 1), ErrMalformed},
		{"qop without nc", strings.Replace(good, "nc=00000001, ", "", 1), ErrMalformed},
		{"nc not hex", strings.Replace(good, "nc=00000001", "nc=0000000g", 1), ErrMalformed},
		{"nc zero", strings.Replace(good, "nc=00000001", "nc=00000000", 1), ErrMalformed},
		{"nc too long", strings.Replace(good, "nc=00000001", "nc=000000001", 1), ErrMalformed},
		{"too many params", good + manyParams(40), ErrMalformed},
		{"well-formed but wrong", good, ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Verify(tc.header, "REGISTER", regURI, lookup)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ", p%d=1", i)
	}
	return b.String()
}

func TestReplayTable(t *testing.T) {
	ttl := time.Minute
	r := newReplayTable(2)
	now := int64(10)
	if !r.accept("n1", 1, 1, now, ttl) || !r.accept("n2", 2, 1, now, ttl) || !r.accept("n3", 3, 1, now, ttl) {
		t.Fatal("first uses refused")
	}
	if r.accept("n1", 1, 2, now, ttl) {
		t.Error("forgotten nonce accepted: its history is unknown")
	}
	if r.accept("n3", 3, 1, now, ttl) || !r.accept("n3", 3, 2, now, ttl) {
		t.Error("replay tracking of a kept nonce")
	}

	// Entries past their TTL leave without raising the floor.
	r = newReplayTable(2)
	r.accept("old", 1, 1, 2, ttl)
	later := 1 + int64(ttl) + 1
	if !r.accept("a", 5, 1, later, ttl) || !r.accept("b", 6, 1, later, ttl) {
		t.Fatal("first uses refused")
	}
	if r.floor != 0 {
		t.Errorf("floor raised to %d by an expired entry", r.floor)
	}
}

func TestNCWindow(t *testing.T) {
	tests := []struct {
		seq  []uint32
		want []bool
	}{
		{[]uint32{1, 2, 3}, []bool{true, true, true}},
		{[]uint32{1, 1}, []bool{true, false}},
		{[]uint32{5, 3, 4, 3, 5}, []bool{true, true, true, false, false}},
		{[]uint32{1, 64, 1}, []bool{true, true, false}},
		{[]uint32{1, 65, 2, 1}, []bool{true, true, true, false}},
		{[]uint32{1, 1000, 999, 936, 937}, []bool{true, true, true, false, true}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.seq), func(t *testing.T) {
			s := &ncState{top: tc.seq[0], window: 1}
			for i, nc := range tc.seq[1:] {
				if got := s.mark(nc); got != tc.want[i+1] {
					t.Errorf("nc %d: %v, want %v", nc, got, tc.want[i+1])
				}
			}
		})
	}
}

func TestConcurrentVerify(t *testing.T) {
	s, _ := newTestServer()
	ch := s.Challenge(false)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	// Counts 1..64 in any order fit the reordering window.
	for i := range 64 {
		h := answer(t, ch[i%2], "REGISTER", regURI, "alice", "wonderland", i+1)
		wg.Go(func() {
			if _, err := s.Verify(h, "REGISTER", regURI, lookup); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func FuzzVerify(f *testing.F) {
	s, _ := newTestServer()
	ch := s.Challenge(false)
	f.Add(ch[0])
	f.Add(`Digest username="a\"b", realm="pbx.example.com", nonce="x", uri="sip:a@b", response="00", qop=auth, nc=1, cnonce=c`)
	f.Add("Digest ,,,")
	f.Fuzz(func(t *testing.T, header string) {
		_, err := s.Verify(header, "REGISTER", regURI, lookup)
		for _, e := range []error{nil, ErrNoCredentials, ErrBadCredentials, ErrStaleNonce, ErrMalformed} {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("unexpected error %v", err)
	})
}

func TestOffer(t *testing.T) {
	s, _ := newTestServer()
	s.Offer("MD5")
	ch := s.Challenge(false)
	if len(ch) != 1 || !strings.Contains(ch[0], "algorithm=MD5") {
		t.Fatalf("MD5-only challenge = %q", ch)
	}
	s.Offer("SHA-256", "MD5")
	ch = s.Challenge(false)
	if len(ch) != 2 || !strings.Contains(ch[0], "algorithm=SHA-256") || !strings.Contains(ch[1], "algorithm=MD5") {
		t.Fatalf("ordered challenge = %q", ch)
	}
}

func TestNonceBoundToSource(t *testing.T) {
	s, _ := newTestServer()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	h := answer(t, s.ChallengeFor(a, false)[1], "REGISTER", regURI, "alice", "wonderland", 1)
	if _, err := s.VerifyFrom(b, h, "REGISTER", regURI, lookup); err != ErrStaleNonce {
		t.Errorf("nonce of %v answered from %v: %v, want %v", a, b, err, ErrStaleNonce)
	}
	if _, err := s.Verify(h, "REGISTER", regURI, lookup); err != ErrStaleNonce {
		t.Errorf("nonce of %v answered from no source: %v, want %v", a, err, ErrStaleNonce)
	}
	if _, err := s.VerifyFrom(netip.MustParseAddr("::ffff:192.0.2.1"), h, "REGISTER", regURI, lookup); err != nil {
		t.Errorf("nonce answered from its own (IPv4-mapped) source: %v", err)
	}
	// A wrong guess from another source neither gets a verdict nor spends
	// the nonce of the source it was issued to.
	g := answer(t, s.ChallengeFor(a, false)[1], "REGISTER", regURI, "alice", "guess", 1)
	if _, err := s.VerifyFrom(b, g, "REGISTER", regURI, lookup); err != ErrStaleNonce {
		t.Errorf("guess from another source: %v, want %v", err, ErrStaleNonce)
	}
}

func TestAlgorithms(t *testing.T) {
	both := []string{"MD5", "SHA-256"}
	tests := []struct {
		name  string
		cred  Credential
		offer []string
		want  []string
	}{
		{"password takes the offer", Credential{Password: "x"}, []string{"SHA-256", "MD5"}, []string{"SHA-256", "MD5"}},
		{"md5 ha1", Credential{HA1MD5: "ab"}, both, []string{"MD5"}},
		{"sha-256 ha1", Credential{HA1SHA256: "ab"}, both, []string{"SHA-256"}},
		{"both ha1 in offer order", Credential{HA1MD5: "ab", HA1SHA256: "cd"}, []string{"SHA-256", "MD5"}, []string{"SHA-256", "MD5"}},
		{"an ha1 the offer leaves out", Credential{HA1SHA256: "cd"}, []string{"MD5"}, []string{"SHA-256"}},
		{"both ha1, offer of one", Credential{HA1MD5: "ab", HA1SHA256: "cd"}, []string{"MD5"}, []string{"MD5", "SHA-256"}},
	}
	for _, tc := range tests {
		if got := Algorithms(tc.cred, tc.offer); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Algorithms = %v, want %v", tc.name, got, tc.want)
		}
	}
}
