package web

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"
)

// signinData is what the sign-in page shows.
type signinData struct {
	Next      string
	Name      string // kept after a failed attempt
	Error     string
	Token     string // the double-submit token of the form
	CanSignIn bool
}

const signinTokenAge = 3600 // seconds a sign-in form stays usable

// signinPage shows the sign-in form; on open pages, or signed in already,
// it goes to the board.
func (s *Site) signinPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if s.opts.Accounts.Open() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if sess := s.sessions.get(c.Value); sess != nil && s.stillValid(sess) {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
	}
	s.renderSignin(w, r, http.StatusOK, signinData{Next: next})
}

func (s *Site) renderSignin(w http.ResponseWriter, r *http.Request, status int, d signinData) {
	d.Token = randomToken()
	d.CanSignIn = s.opts.Accounts.CanSignIn()
	s.setCookie(w, r, signinCookie, d.Token, "/signin", signinTokenAge)
	s.render(w, status, "signin", s.newPage(nil, "Sign in", "", d))
}

// signin checks the name and password and starts a session. The form is
// guarded by a double-submit token (there is no session yet to tie one to)
// and the origin check; failures count against the source address with
// the API's, and past the limit the source is refused without a check.
func (s *Site) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
		return
	}
	d := signinData{Next: localPath(r.PostForm.Get("next")), Name: strings.TrimSpace(r.PostForm.Get("name"))}
	c, err := r.Cookie(signinCookie)
	if !sameOrigin(r) || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		s.log.Warn().Str("source", r.RemoteAddr).Msg("sign-in refused: form from another site or expired")
		d.Error = "This sign-in form has expired or came from another site. Please try again."
		s.renderSignin(w, r, http.StatusForbidden, d)
		return
	}
	if s.opts.Accounts.Open() {
		http.Redirect(w, r, d.Next, http.StatusSeeOther)
		return
	}
	acct, err := s.opts.Accounts.SignIn(sourceIP(r), d.Name, r.PostForm.Get("password"))
	switch {
	case errors.Is(err, ErrLockedOut):
		w.Header().Set("Retry-After", "60")
		d.Error = "Too many failed sign-ins from this address. Try again in a minute."
		s.renderSignin(w, r, http.StatusTooManyRequests, d)
		return
	case err != nil:
		d.Error = "Wrong name or password."
		s.renderSignin(w, r, http.StatusUnauthorized, d)
		return
	}
	// A new ID at every sign-in: an ID planted before it is worth nothing.
	if old, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.end(old.Value)
	}
	id, _ := s.sessions.create(acct.Name, acct.Stamp)
	s.setCookie(w, r, sessionCookie, id, "/", 0)
	s.setCookie(w, r, signinCookie, "", "/signin", -1)
	s.log.Info().Str("source", sourceIP(r)).Str("user", acct.Name).Str("role", acct.Role).Msg("signed in")
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// signout ends the session.
func (s *Site) signout(w http.ResponseWriter, r *http.Request, v *visit) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.end(c.Value)
	}
	s.setCookie(w, r, sessionCookie, "", "/", -1)
	if v.acct.Name != "" {
		s.log.Info().Str("source", sourceIP(r)).Str("user", v.acct.Name).Msg("signed out")
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// localPath is next when it is a path of this site, else "/": a sign-in
// never sends the browser elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// sourceIP is the peer address of r, without the port.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
