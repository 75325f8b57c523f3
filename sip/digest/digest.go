// Package digest implements server-side SIP digest authentication (RFC
// 3261 §22, RFC 2617, RFC 7616, RFC 8760): challenges with stateless,
// self-authenticating nonces and verification of Authorization and
// Proxy-Authorization values.
package digest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Verification outcomes. The caller challenges on ErrNoCredentials,
// re-challenges with stale=true on ErrStaleNonce, answers 403 on
// ErrBadCredentials and 400 on ErrMalformed. Only ErrBadCredentials and
// success are verdicts on the password, and both need a nonce this server
// issued to the same source, still fresh and not used before: a guess
// always costs a round trip to a challenge.
var (
	// ErrNoCredentials: no digest credentials for this realm.
	ErrNoCredentials = errors.New("digest: no credentials")
	// ErrBadCredentials: unknown user, wrong password, or a response made
	// for another request URI, on a valid nonce. Always this exact value,
	// so callers and logs cannot tell the cases apart. The nonce cannot be
	// used again.
	ErrBadCredentials = errors.New("digest: bad credentials")
	// ErrStaleNonce: the nonce was not issued by this server (or one
	// sharing its secret) to this source, has expired, failed before, or
	// its nonce count was already used. The password was not looked at:
	// the client needs a fresh challenge, and learns nothing else.
	ErrStaleNonce = errors.New("digest: stale nonce")
	// ErrMalformed: the header cannot be parsed or asks for something
	// unsupported (qop=auth-int, an unknown algorithm).
	ErrMalformed = errors.New("digest: malformed credentials")
)

// Credential is what the switch stores for a user: the clear-text
// Password or precomputed HA1 values. An HA1 verifies only its own
// algorithm family, so a store holding only HA1MD5 fails clients that
// choose SHA-256, which RFC 8760 clients prefer when both are offered.
type Credential struct {
	Username string
	// Realm, when set, must be the server's realm: HA1 depends on it.
	Realm    string
	Password string
	// HA1MD5 is hex MD5(username ":" realm ":" password).
	HA1MD5 string
	// HA1SHA256 is hex SHA-256(username ":" realm ":" password).
	HA1SHA256 string
}

// DefaultNonceTTL is used when NewServer is given no positive TTL.
const DefaultNonceTTL = 5 * time.Minute

// clockSkew bounds how far in the future a nonce's timestamp may be, for
// servers sharing a secret whose clocks differ slightly.
const clockSkew = time.Minute

const (
	nonceRandLen = 8
	nonceMACLen  = 16
	nonceLen     = 8 + nonceRandLen + nonceMACLen
)

// Server issues challenges and verifies responses for one realm. It is
// safe for concurrent use.
type Server struct {
	realm  string
	key    []byte
	ttl    time.Duration
	now    func() time.Time
	opaque string
	seen   *replayTable
	offer  []string // algorithms challenged, in order
}

// NewServer returns a server for realm. Servers sharing secret accept
// each other's nonces; a nil secret is replaced by a random one, so nonces
// do not survive a restart (clients then get ErrStaleNonce and retry
// without prompting). nonceTTL <= 0 means DefaultNonceTTL; now == nil
// means time.Now.
func NewServer(realm string, secret []byte, nonceTTL time.Duration, now func() time.Time) *Server {
	key := secret
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic("digest: no randomness: " + err.Error())
		}
	}
	key = append([]byte(nil), key...)
	if nonceTTL <= 0 {
		nonceTTL = DefaultNonceTTL
	}
	if now == nil {
		now = time.Now
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("opaque\x00" + realm))
	return &Server{
		realm:  realm,
		key:    key,
		ttl:    nonceTTL,
		now:    now,
		opaque: base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16]),
		offer:  []string{"MD5", "SHA-256"},
		seen:   newReplayTable(maxTrackedNonces),
	}
}

// Offer sets the algorithms challenges offer, in order ("MD5", "SHA-256").
// Some clients give up on a challenge they cannot compute even when
// another one follows (baresip before 3.12 on SHA-256), so operators can
// offer MD5 alone. Verify accepts every algorithm it knows regardless.
// Call it before the server is used.
func (s *Server) Offer(algorithms ...string) {
	if len(algorithms) > 0 {
		s.offer = algorithms
	}
}

// Challenge returns the header values to send, as WWW-Authenticate in a
// 401 or Proxy-Authenticate in a 407: MD5 first, then SHA-256 (RFC 8760),
// both with qop="auth" and one fresh nonce; stale=true when the previous
// attempt failed with ErrStaleNonce. algorithms, when given, replace the
// offered ones for this challenge. The default puts MD5 first because many
// deployed phones and SIPp answer only the first challenge; clients take
// the first one they support (Linphone does), so an operator who wants
// SHA-256 from capable phones lists it first.
func (s *Server) Challenge(stale bool, algorithms ...string) []string {
	return s.ChallengeFor(netip.Addr{}, stale, algorithms...)
}

// ChallengeFor is Challenge with a nonce bound to src, the IP address the
// request came from: VerifyFrom accepts it from that address only, so a
// source that cannot receive the challenge (a spoofed one) cannot have a
// guess judged.
func (s *Server) ChallengeFor(src netip.Addr, stale bool, algorithms ...string) []string {
	if len(algorithms) == 0 {
		algorithms = s.offer
	}
	nonce := s.newNonce(src)
	out := make([]string, 0, 2)
	for _, alg := range algorithms {
		var b strings.Builder
		b.WriteString(`Digest realm=`)
		b.WriteString(quote(s.realm))
		b.WriteString(`, nonce="`)
		b.WriteString(nonce)
		b.WriteString(`", opaque="`)
		b.WriteString(s.opaque)
		b.WriteString(`"`)
		if stale {
			b.WriteString(`, stale=true`)
		}
		b.WriteString(`, algorithm=`)
		b.WriteString(alg)
		b.WriteString(`, qop="auth"`)
		out = append(out, b.String())
	}
	return out
}

// Verify checks an Authorization or Proxy-Authorization value against
// method and requestURI (the request's method and Request-URI). lookup
// returns the stored credential for a user name, ok=false when there is
// none. username is the name the client presented, set whenever the
// header parsed; it is authenticated only when err is nil.
//
// A value for another realm yields ErrNoCredentials, so a caller holding
// several headers can try each. The digest "uri" must equal requestURI or
// name the same sip/sips user, host and port (parameters are ignored:
// phones differ in which they copy, and sipgo re-serializes the
// Request-URI the caller passes in).
//
// The nonce is checked before anything that depends on the password: a
// nonce this server did not issue, an expired or replayed one yields
// ErrStaleNonce whatever the response. Nonce counts (qop=auth) are tracked
// per nonce, within bounded memory; a response that fails retires its
// nonce. Responses without qop (RFC 2069) carry no count and can be
// replayed until the nonce expires.
func (s *Server) Verify(header, method, requestURI string, lookup func(username string) (Credential, bool)) (username string, err error) {
	return s.VerifyFrom(netip.Addr{}, header, method, requestURI, lookup)
}

// VerifyFrom is Verify for a request from src, whose nonce must have been
// issued by ChallengeFor to the same address.
func (s *Server) VerifyFrom(src netip.Addr, header, method, requestURI string, lookup func(username string) (Credential, bool)) (username string, err error) {
	p, err := parseCredentials(header)
	if err != nil {
		return "", err
	}
	username = p["username"]
	for _, k := range []string{"username", "realm", "nonce", "uri", "response"} {
		if _, ok := p[k]; !ok {
			return username, fmt.Errorf("%w: no %s", ErrMalformed, k)
		}
	}
	alg, ok := algorithms[strings.ToUpper(p["algorithm"])]
	if !ok {
		return username, fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
	}
	qop, nc := p["qop"], p["nc"]
	var count uint64
	switch strings.ToLower(qop) { // the hash uses qop as sent
	case "":
	case "auth":
		if p["cnonce"] == "" || len(nc) == 0 || len(nc) > 8 {
			return username, fmt.Errorf("%w: bad cnonce or nc", ErrMalformed)
		}
		count, err = strconv.ParseUint(nc, 16, 32)
		if err != nil || count == 0 {
			return username, fmt.Errorf("%w: bad nc", ErrMalformed)
		}
	default:
		return username, fmt.Errorf("%w: unsupported qop", ErrMalformed)
	}
	if p["realm"] != s.realm {
		return username, ErrNoCredentials
	}

	// The nonce first: without a live one there is no verdict.
	nonce := p["nonce"]
	issued, nonceOK := s.checkNonce(nonce, src)
	if o, ok := p["opaque"]; ok && o != s.opaque {
		nonceOK = false
	}
	if !nonceOK || !s.fresh(issued) || !s.seen.usable(nonce, issued, qop != "", uint32(count)) {
		return username, ErrStaleNonce
	}

	// Unknown users go through the same hashing as known ones, with a
	// throwaway password, so timing does not reveal who exists.
	cred, known := lookup(username)
	if known && (cred.Username != username || (cred.Realm != "" && cred.Realm != s.realm)) {
		known = false
	}
	password := cred.Password
	if !known || password == "" {
		password = dummyPassword
	}
	h := alg.hash()
	ha1 := hexHash(h, username, s.realm, password)
	switch {
	case !known:
	case cred.Password != "":
	case alg.family == "MD5" && cred.HA1MD5 != "":
		ha1 = strings.ToLower(cred.HA1MD5)
	case alg.family == "SHA-256" && cred.HA1SHA256 != "":
		ha1 = strings.ToLower(cred.HA1SHA256)
	default:
		known = false
	}
	want := response(h, alg.sess, ha1, nonce, nc, p["cnonce"], qop, method, p["uri"])
	got := strings.ToLower(p["response"])
	if subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 || !known || !uriMatches(p["uri"], requestURI) {
		// One guess per challenge: the nonce is spent.
		s.seen.retire(nonce, issued, s.now().UnixNano(), s.ttl)
		return username, ErrBadCredentials
	}
	if qop != "" && !s.seen.accept(nonce, issued, uint32(count), s.now().UnixNano(), s.ttl) {
		return username, ErrStaleNonce // the same count raced in twice
	}
	return username, nil
}

// Algorithms returns the algorithms of offer that c can verify, in offer's
// order: a password verifies any, an HA1 only its own family. A stored
// HA1 that offer leaves out is still offered (after offer's), as a user
// who has only that one could not log in otherwise.
func Algorithms(c Credential, offer []string) []string {
	if c.Password != "" {
		return offer
	}
	can := map[string]bool{"MD5": c.HA1MD5 != "", "SHA-256": c.HA1SHA256 != ""}
	var out []string
	for _, a := range offer {
		if can[strings.ToUpper(a)] {
			out = append(out, a)
			can[strings.ToUpper(a)] = false
		}
	}
	for _, a := range []string{"MD5", "SHA-256"} {
		if can[a] {
			out = append(out, a)
		}
	}
	return out
}

// dummyPassword stands in for the password of users that do not exist.
const dummyPassword = "\x00no such user\x00"

type algorithm struct {
	family string // the algorithm without -sess
	hash   func() hash.Hash
	sess   bool
}

var algorithms = map[string]algorithm{
	"":                 {"MD5", md5.New, false}, // RFC 2617: MD5 when absent
	"MD5":              {"MD5", md5.New, false},
	"MD5-SESS":         {"MD5", md5.New, true},
	"SHA-256":          {"SHA-256", sha256.New, false},
	"SHA-256-SESS":     {"SHA-256", sha256.New, true},
	"SHA-512-256":      {"SHA-512-256", sha512.New512_256, false},
	"SHA-512-256-SESS": {"SHA-512-256", sha512.New512_256, true},
}

// response computes request-digest (RFC 7616 §3.4.1; without qop, RFC
// 2069).
func response(h hash.Hash, sess bool, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	if sess {
		ha1 = hexHash(h, ha1, nonce, cnonce)
	}
	ha2 := hexHash(h, method, uri)
	if qop == "" {
		return hexHash(h, ha1, nonce, ha2)
	}
	return hexHash(h, ha1, nonce, nc, cnonce, qop, ha2)
}

func hexHash(h hash.Hash, parts ...string) string {
	h.Reset()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// newNonce returns base64url(timestamp || random || MAC), the MAC binding
// timestamp and random part to the secret, the realm and the source
// address: nothing to store.
func (s *Server) newNonce(src netip.Addr) string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(s.now().UnixNano()))
	if _, err := rand.Read(b[8 : 8+nonceRandLen]); err != nil {
		panic("digest: no randomness: " + err.Error())
	}
	copy(b[8+nonceRandLen:], s.nonceMAC(b[:8+nonceRandLen], src))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) nonceMAC(prefix []byte, src netip.Addr) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(prefix)
	if src.IsValid() {
		a := src.Unmap().As16()
		m.Write([]byte{1})
		m.Write(a[:])
	} else {
		m.Write([]byte{0})
	}
	m.Write([]byte(s.realm))
	return m.Sum(nil)[:nonceMACLen]
}

// checkNonce returns the nonce's issue time (Unix ns) and whether this
// server (or one sharing its secret) issued it to src.
func (s *Server) checkNonce(nonce string, src netip.Addr) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceLen {
		return 0, false
	}
	if !hmac.Equal(b[8+nonceRandLen:], s.nonceMAC(b[:8+nonceRandLen], src)) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[:8])), true
}

func (s *Server) fresh(issued int64) bool {
	age := s.now().Sub(time.Unix(0, issued))
	return age >= -clockSkew && age <= s.ttl
}

// uriMatches compares the digest uri with the Request-URI: equal strings,
// or sip/sips URIs with the same scheme, host and port and the same user
// unless the digest uri has none (SIPp and some phones send the server's
// address alone, e.g. "sip:192.0.2.1:5060").
func uriMatches(digestURI, requestURI string) bool {
	if digestURI == requestURI {
		return true
	}
	var a, b sip.Uri
	if sip.ParseUri(digestURI, &a) != nil || sip.ParseUri(requestURI, &b) != nil {
		return false
	}
	if a.Scheme != b.Scheme || (a.Scheme != "sip" && a.Scheme != "sips") {
		return false
	}
	return (a.User == "" || unescape(a.User) == unescape(b.User)) &&
		strings.EqualFold(a.Host, b.Host) &&
		port(&a) == port(&b)
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func port(u *sip.Uri) int {
	switch {
	case u.Port != 0:
		return u.Port
	case u.Scheme == "sips":
		return 5061
	default:
		return 5060
	}
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
