package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
)

// Limits on failed admin API logins from one source address: past
// maxLoginFailures in loginWindow, its requests are answered 429 without
// checking credentials (a bcrypt comparison costs tens of milliseconds).
const (
	maxLoginFailures = 10
	loginWindow      = time.Minute
	maxLoginSources  = 10000 // bounds the failure table under a spoofing flood
)

// openPaths stay reachable without credentials: health checks and
// Prometheus scrapers are not given secrets.
var openPaths = map[string]bool{"/healthz": true, "/metrics": true}

// apiAuth guards the admin HTTP handler with the http.users (Basic) and
// http.tokens (Bearer) of the configuration. With no credentials at all it
// lets everything through: config.Parse allows that only on a loopback
// http_listen.
type apiAuth struct {
	log   zerolog.Logger
	creds atomic.Pointer[apiCreds] // replaced on reload
	now   func() time.Time

	mu       sync.Mutex
	failures map[string]*loginFailures // by source IP
}

type apiCreds struct {
	users  map[string]config.HTTPUser
	tokens []apiToken
}

type apiToken struct {
	name, role string
	sum        [sha256.Size]byte // compared instead of the token: equal lengths, constant time
}

type loginFailures struct {
	count  int
	since  time.Time
	logged bool // the lockout was logged
}

// principal is who made an authenticated request.
type principal struct{ name, role string }

// dummyHash keeps a login for an unknown user as slow as one for a known
// user, so response times do not tell which names exist.
// It is made on first use: commands other than serve never need it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("parkswitch"), bcrypt.DefaultCost)
	return h
})

func newAPIAuth(h config.HTTP, log zerolog.Logger) *apiAuth {
	a := &apiAuth{log: log.With().Str("component", "http").Logger(), now: time.Now, failures: map[string]*loginFailures{}}
	a.set(h)
	return a
}

// set installs the credentials of a (re)loaded configuration.
func (a *apiAuth) set(h config.HTTP) {
	c := &apiCreds{users: map[string]config.HTTPUser{}}
	for _, u := range h.Users {
		c.users[u.Name] = u
	}
	for _, t := range h.Tokens {
		c.tokens = append(c.tokens, apiToken{name: t.Name, role: t.Role, sum: sha256.Sum256([]byte(t.Token))})
	}
	a.creds.Store(c)
}

// wrap returns next behind authentication.
func (a *apiAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := a.creds.Load()
		if openPaths[r.URL.Path] || (len(c.users) == 0 && len(c.tokens) == 0) {
			next.ServeHTTP(w, r)
			return
		}
		src := sourceIP(r)
		if a.lockedOut(src) {
			w.Header().Set("Retry-After", strconv.Itoa(int(loginWindow/time.Second)))
			http.Error(w, "too many failed logins; try again later", http.StatusTooManyRequests)
			return
		}
		p, scheme, presented := a.check(c, r)
		if p == nil {
			if presented {
				a.failed(src, scheme, r)
			}
			if len(c.users) > 0 {
				w.Header().Add("WWW-Authenticate", `Basic realm="parkswitch", charset="UTF-8"`)
			}
			if len(c.tokens) > 0 {
				w.Header().Add("WWW-Authenticate", `Bearer realm="parkswitch"`)
			}
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if p.role != config.RoleAdmin && r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.log.Warn().Str("source", src).Str("name", p.name).Str("method", r.Method).Str("path", r.URL.Path).
				Msg("admin API refused: a viewer may only read")
			http.Error(w, "forbidden: this credential may only read (role viewer)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check verifies the request's credentials. presented reports whether it
// carried any of a kind that is configured.
func (a *apiAuth) check(c *apiCreds, r *http.Request) (p *principal, scheme string, presented bool) {
	h := r.Header.Get("Authorization")
	if tok, ok := cutScheme(h, "Bearer"); ok && len(c.tokens) > 0 {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		var found *apiToken
		for i := range c.tokens { // no early exit: the time taken does not say which token matched
			if subtle.ConstantTimeCompare(sum[:], c.tokens[i].sum[:]) == 1 {
				found = &c.tokens[i]
			}
		}
		if found == nil {
			return nil, "bearer", true
		}
		return &principal{name: found.name, role: found.role}, "bearer", true
	}
	if name, password, ok := r.BasicAuth(); ok && len(c.users) > 0 {
		return c.checkPassword(name, password), "basic", true
	}
	return nil, "", h != ""
}

// checkPassword returns the user of name when password is theirs, nil
// otherwise; an unknown name takes as long as a known one.
func (c *apiCreds) checkPassword(name, password string) *principal {
	u, known := c.users[name]
	var hash []byte
	if known {
		hash = []byte(u.PasswordHash)
	} else {
		hash = dummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return nil
	}
	return &principal{name: u.Name, role: u.Role}
}

// cutScheme returns the credentials of an Authorization value of the
// given scheme (compared ignoring case, RFC 9110 §11.1).
func cutScheme(h, scheme string) (string, bool) {
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", false
	}
	return h[len(scheme)+1:], true
}

// failed logs a failed login, never what was presented but the user name
// of a Basic attempt, and counts it against the source.
func (a *apiAuth) failed(src, scheme string, r *http.Request) {
	ev := a.log.Warn().Str("source", src).Str("scheme", scheme).Str("method", r.Method).Str("path", r.URL.Path)
	if name, _, ok := r.BasicAuth(); ok && scheme == "basic" {
		ev = ev.Str("user", name)
	}
	ev.Msg("admin API login failed")
	a.count(src)
}

// count counts a failed login against src, whether by the API or the
// sign-in page.
func (a *apiAuth) count(src string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	f := a.failures[src]
	if f == nil || now.Sub(f.since) > loginWindow {
		if f == nil && len(a.failures) >= maxLoginSources {
			a.pruneLocked(now)
			if len(a.failures) >= maxLoginSources {
				return
			}
		}
		f = &loginFailures{since: now}
		a.failures[src] = f
	}
	f.count++
	if f.count >= maxLoginFailures && !f.logged {
		f.logged = true
		a.log.Warn().Str("source", src).Int("failures", f.count).Dur("for", loginWindow).
			Msg("admin API logins from this source refused for a while: too many failures")
	}
}

// lockedOut reports whether src failed too often recently.
func (a *apiAuth) lockedOut(src string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.failures[src]
	if f == nil {
		return false
	}
	if a.now().Sub(f.since) > loginWindow {
		delete(a.failures, src)
		return false
	}
	return f.count >= maxLoginFailures
}

func (a *apiAuth) pruneLocked(now time.Time) {
	for src, f := range a.failures {
		if now.Sub(f.since) > loginWindow {
			delete(a.failures, src)
		}
	}
}

// sourceIP is the peer address of r, without the port.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
