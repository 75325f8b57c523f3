package sip

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/sip/digest"
	"github.com/parkswitch/parkswitch/sip/sipcheck"
)

// guard validates a request before its handler sees it, and keeps a panic
// in one request from taking the process down. A banned source gets no
// answer at all; refusals here are sent once (respondOnce), as nothing
// about the sender has been verified yet.
func (s *Switch) guard(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error().Interface("panic", r).Str("method", string(req.Method)).Msg("request handler panicked")
				s.reply(req, tx, sip.StatusInternalServerError, "")
			}
		}()
		if s.ignored(req) {
			s.metrics.refused.WithLabelValues("banned").Inc()
			return
		}
		if err := sipcheck.Request(req); err != nil {
			s.metrics.refused.WithLabelValues("malformed").Inc()
			s.replyOnce(req, tx, sipcheck.StatusCode(err), err.Error())
			return
		}
		if s.shed(req, tx) {
			return
		}
		if req.Method != sip.ACK && req.Method != sip.CANCEL {
			if tags := unsupported(req); len(tags) > 0 {
				// RFC 3261 §8.2.2.3: no 100rel, no timer.
				res := s.response(req, sip.StatusBadExtension, "")
				res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(tags, ", ")))
				s.respondOnce(tx, res)
				return
			}
		}
		h(req, tx)
	}
}

// authenticate checks req's digest credentials (Authorization for REGISTER,
// Proxy-Authorization otherwise). It returns the user, or nil after it has
// answered the request itself with a challenge or a refusal, each sent
// once. A nonce that is not live gets a fresh challenge, never a verdict;
// an unknown user and a wrong password get the same 403, which counts
// against the source (see ignored).
func (s *Switch) authenticate(req *sip.Request, tx sip.ServerTransaction, proxy bool) *User {
	hdrName, challengeName, code := "Authorization", "WWW-Authenticate", sip.StatusUnauthorized
	if proxy {
		hdrName, challengeName, code = "Proxy-Authorization", "Proxy-Authenticate", sip.StatusProxyAuthRequired
	}
	dir := s.dir.Load()
	src := sourceIP(req)
	realmHeader := ""
	for _, h := range req.GetHeaders(hdrName) {
		// Phones may carry credentials for other realms; use ours.
		if strings.Contains(h.Value(), `realm="`+s.opts.Domain+`"`) || realmHeader == "" {
			realmHeader = h.Value()
		}
	}
	challenge := func(stale bool) {
		res := s.response(req, code, "")
		for _, v := range s.auth.ChallengeFor(src, stale, s.offerFor(req, dir, realmHeader)...) {
			res.AppendHeader(sip.NewHeader(challengeName, v))
		}
		s.respondOnce(tx, res)
	}
	if realmHeader == "" {
		challenge(false)
		return nil
	}
	name, err := s.auth.VerifyFrom(src, realmHeader, string(req.Method), req.Recipient.String(), func(username string) (digest.Credential, bool) {
		u, ok := dir.UserByName(username)
		if !ok {
			return digest.Credential{}, false
		}
		return credentialOf(u, s.opts.Domain), true
	})
	refused := func(status int, why string) {
		s.metrics.refused.WithLabelValues("auth").Inc()
		s.log.Info().Str("user", truncate(name, 64)).Str("source", req.Source()).Str("method", string(req.Method)).
			Int("status", status).Str("reason", why).Msg("authentication refused")
		s.replyOnce(req, tx, status, "")
	}
	switch {
	case err == nil:
		if u, ok := dir.UserByName(name); ok {
			return u
		}
		refused(sip.StatusForbidden, "user removed")
	case errors.Is(err, digest.ErrStaleNonce):
		challenge(true)
	case errors.Is(err, digest.ErrNoCredentials):
		challenge(false)
	case errors.Is(err, digest.ErrMalformed):
		s.metrics.refused.WithLabelValues("auth").Inc()
		s.log.Info().Str("source", req.Source()).Str("method", string(req.Method)).Err(err).Msg("authentication refused: malformed credentials")
		s.replyOnce(req, tx, sip.StatusBadRequest, "Malformed credentials")
	default:
		refused(sip.StatusForbidden, "bad credentials")
		s.authFailed(req)
	}
	return nil
}

// credentialOf is what the digest server verifies u against.
func credentialOf(u *User, realm string) digest.Credential {
	return digest.Credential{Username: u.Name, Realm: realm, Password: u.Password, HA1MD5: u.HA1, HA1SHA256: u.HA1SHA256}
}

// offerFor chooses the algorithms a challenge offers: those the stored
// secret of the user the request names can verify (an MD5 HA1 cannot
// answer SHA-256), the configured ones for a password and for a user who
// does not exist, so that a challenge does not tell who does.
func (s *Switch) offerFor(req *sip.Request, dir *Directory, credentials string) []string {
	offer := s.opts.DigestAlgorithms
	if len(offer) == 0 {
		offer = []string{"MD5", "SHA-256"}
	}
	name := authUser(credentials)
	if name == "" {
		if h := req.From(); h != nil && req.Method != sip.REGISTER {
			name = h.Address.User
		} else if h := req.To(); h != nil {
			name = h.Address.User
		}
	}
	if u, ok := dir.UserByName(name); ok {
		offer = digest.Algorithms(credentialOf(u, s.opts.Domain), offer)
	}
	if md5Only(req) && slices.Contains(offer, "MD5") {
		return []string{"MD5"}
	}
	return offer
}

// md5Only recognises clients that give up on a digest challenge they
// cannot compute instead of trying the next one (RFC 8760 says to skip
// it): baresip before 3.12 fails its REGISTER on a SHA-256 challenge even
// when an MD5 one is offered too. They are challenged with MD5 alone.
func md5Only(req *sip.Request) bool {
	h := req.GetHeader("User-Agent")
	if h == nil {
		return false
	}
	v, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(h.Value())), "baresip")
	if !ok {
		return false
	}
	v = strings.TrimLeft(v, " v/")
	majorS, rest, _ := strings.Cut(v, ".")
	minorS, _, _ := strings.Cut(rest, ".")
	major, err1 := strconv.Atoi(majorS)
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(minorS, func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return major < 3 || (major == 3 && minor < 12)
}

// authUser pulls the claimed user name out of credentials for logging.
func authUser(h string) string {
	_, after, ok := strings.Cut(h, `username="`)
	if !ok {
		return ""
	}
	u, _, _ := strings.Cut(after, `"`)
	return truncate(u, 64)
}

// onRegister is the registrar (RFC 3261 §10.3).
func (s *Switch) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	u := s.authenticate(req, tx, false)
	if u == nil {
		return
	}
	if to := req.To(); to == nil || !strings.EqualFold(to.Address.User, u.Name) {
		// Credentials of one user may not register another's address.
		s.metrics.refused.WithLabelValues("auth").Inc()
		s.log.Info().Str("user", u.Name).Str("source", req.Source()).Msg("register refused: credentials do not match the To user")
		s.reply(req, tx, sip.StatusForbidden, "Credentials do not match the To user")
		return
	}
	defExpires := 3600
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			s.reply(req, tx, sip.StatusBadRequest, "Bad Expires")
			return
		}
		defExpires = n
	}
	r := registration{
		user:      strings.ToLower(u.Name),
		callID:    req.CallID().Value(),
		cseq:      req.CSeq().SeqNo,
		source:    req.Source(),
		transport: strings.ToUpper(req.Transport()),
	}
	if h := req.GetHeader("User-Agent"); h != nil {
		r.userAgent = truncate(h.Value(), 128)
	}
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			s.reply(req, tx, sip.StatusBadRequest, "Bad Contact")
			return
		}
		if c.Address.Wildcard {
			r.wildcard = true
			continue
		}
		exp := defExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.reply(req, tx, sip.StatusBadRequest, "Bad Contact expires")
				return
			}
			exp = n
		}
		exp = min(exp, s.opts.MaxExpires)
		r.contacts = append(r.contacts, contactExpiry{uri: *c.Address.Clone(), expires: exp})
	}
	if r.wildcard && (len(r.contacts) > 0 || defExpires != 0) {
		// RFC 3261 §10.3 step 6.
		s.reply(req, tx, sip.StatusBadRequest, "Wildcard Contact needs Expires: 0 and no other contact")
		return
	}
	bindings := s.register(r)
	res := s.response(req, sip.StatusOK, "")
	now := s.opts.Now()
	for _, b := range bindings {
		if b.Static {
			continue
		}
		ch := &sip.ContactHeader{Address: *b.Contact.Clone()}
		ch.Params.Add("expires", strconv.Itoa(max(0, int(b.Expires.Sub(now).Round(time.Second)/time.Second))))
		res.AppendHeader(ch)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	s.respond(tx, res)
	s.log.Info().Str("user", u.Name).Str("source", r.source).Str("transport", r.transport).
		Int("contacts", len(r.contacts)).Int("bindings", len(bindings)).Msg("register")
}

// Registrations lists every live binding of every node, as the store
// has them (this node's alone when it cannot be read), plus static
// contacts.
func (s *Switch) Registrations() []Binding {
	out := s.storedRegistrations()
	for _, u := range s.dir.Load().Users() {
		if b, ok := staticBinding(u); ok {
			out = append(out, b)
		}
	}
	return out
}

// contactsOf returns where a user can be reached from this node: its
// bindings held here first, then the static contact.
func (s *Switch) contactsOf(u *User) []Binding {
	bs := s.reg.Lookup(u.Name)
	if b, ok := staticBinding(u); ok {
		bs = append(bs, b)
	}
	return bs
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
