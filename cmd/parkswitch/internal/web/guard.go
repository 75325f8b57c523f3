package web

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// Cookie names. The session cookie is sent with top-level navigations from
// other sites (SameSite=Lax), so that a link to the board in a chat opens
// it signed in; what changes anything is a POST, which such a request
// never carries the cookie for, and which must carry the form's token too.
const (
	sessionCookie = "parkswitch_session"
	signinCookie  = "parkswitch_signin" // double-submit token of the sign-in form, before a session exists
	maxFormBytes  = 64 << 10
)

// visit is who is asking: the account and session of a request that got
// past the guard.
type visit struct {
	acct Account
	sess *session
	open bool // no credentials configured: everyone is an admin
}

type visitKey struct{}

// visitOf is the visit of a guarded request; nil for an unguarded one.
func (s *Site) visitOf(r *http.Request) *visit {
	v, _ := r.Context().Value(visitKey{}).(*visit)
	return v
}

// access is what a guarded handler needs.
type access struct {
	admin bool // role admin; a viewer gets 403
	data  bool // a fragment or stream fetched by script: 401 rather than a redirect to sign in
}

// guard lets through a request from a live session with the role a
// needs; a POST must also come from the pages' own origin and carry the
// session's token. On open pages every visitor gets a session (the token
// of its forms) as an admin.
func (s *Site) guard(a access, h func(http.ResponseWriter, *http.Request, *visit)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.current(w, r)
		if v == nil {
			if a.data || r.Method != http.MethodGet {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), visitKey{}, v))
		if r.Method == http.MethodPost {
			if !s.formOK(w, r, v.sess.csrf) {
				return
			}
		}
		if a.admin && v.acct.Role != RoleAdmin {
			s.message(w, r, http.StatusForbidden, "Not allowed", "Only an admin may do this: "+v.acct.Name+" signed in as a viewer.")
			return
		}
		h(w, r, v)
	})
}

// current finds the request's session and account, starting a session on
// open pages; nil when the visitor must sign in.
func (s *Site) current(w http.ResponseWriter, r *http.Request) *visit {
	acc := s.opts.Accounts
	var sess *session
	if c, err := r.Cookie(sessionCookie); err == nil {
		sess = s.sessions.get(c.Value)
		if sess != nil && !s.stillValid(sess) {
			s.sessions.end(c.Value)
			sess = nil
		}
	}
	if acc.Open() {
		if sess == nil || sess.user != "" {
			var id string
			id, sess = s.sessions.create("", "")
			s.setCookie(w, r, sessionCookie, id, "/", 0)
		}
		return &visit{acct: Account{Role: RoleAdmin}, sess: sess, open: true}
	}
	if sess == nil {
		return nil
	}
	a, _ := acc.Account(sess.user)
	return &visit{acct: a, sess: sess}
}

// stillValid reports whether the account a session was started for still
// has the password and role it had: a reload that changes either, or
// adds credentials to open pages, ends the session.
func (s *Site) stillValid(sess *session) bool {
	acc := s.opts.Accounts
	if sess.user == "" {
		return acc.Open()
	}
	a, ok := acc.Account(sess.user)
	return ok && a.Stamp == sess.stamp
}

// formOK checks a POST: its size, that it comes from these pages (Origin,
// or Referer where a browser sends no Origin), and its token, compared in
// constant time. It answers the refusal itself.
func (s *Site) formOK(w http.ResponseWriter, r *http.Request, want string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if !sameOrigin(r) {
		s.log.Warn().Str("source", r.RemoteAddr).Str("path", r.URL.Path).Str("origin", r.Header.Get("Origin")).
			Msg("form refused: sent from another site")
		s.message(w, r, http.StatusForbidden, "Refused", "This form was sent from another site.")
		return false
	}
	got := r.PostForm.Get("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.log.Warn().Str("source", r.RemoteAddr).Str("path", r.URL.Path).Msg("form refused: missing or stale token")
		s.message(w, r, http.StatusForbidden, "Refused", "This form has expired (it was opened before a sign-in or a restart). Go back, reload the page and send it again.")
		return false
	}
	return true
}

// sameOrigin reports whether a POST comes from a page of this host: the
// browser's Origin (or, without one, Referer) names the host the request
// was sent to. A request with neither is let through: the token decides.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return true
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return false // includes Origin: null
	}
	return strings.EqualFold(u.Host, r.Host)
}

// secure reports whether the browser reached the pages over TLS: directly,
// or through a proxy that says so. Trusting the proxy's word only ever
// makes the cookie stricter.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// setCookie sets an HttpOnly, SameSite=Lax cookie, Secure over TLS;
// maxAge < 0 deletes it, 0 makes it last as long as the browser.
func (s *Site) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode,
	})
}
