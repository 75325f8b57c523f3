package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/park"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Roles of an account, as in http.users.
const (
	RoleAdmin  = "admin"  // sees everything and changes it
	RoleViewer = "viewer" // sees the board and the policies
)

// Why a sign-in failed.
var (
	ErrBadCredentials = errors.New("web: wrong name or password")
	ErrLockedOut      = errors.New("web: too many failed sign-ins from this address")
)

// Account is someone who may sign in.
type Account struct {
	Name  string
	Role  string // RoleAdmin or RoleViewer
	Stamp string // changes when the password or role does, ending the account's sessions
}

// Accounts are the credentials of the configuration in force.
type Accounts interface {
	// Open reports whether no credentials are configured at all: the
	// pages are then open, as the admin API is.
	Open() bool
	// CanSignIn reports whether any name and password is configured
	// (tokens alone are for the API).
	CanSignIn() bool
	// SignIn checks a name and password sent from source address src,
	// counting failures against src as the API does; it fails with
	// ErrBadCredentials or ErrLockedOut.
	SignIn(src, name, password string) (Account, error)
	// Account is the named account as configured now; false once it is
	// no longer configured.
	Account(name string) (Account, bool)
}

// User is someone a parked call can be rung to.
type User struct {
	Name        string // SIP user name
	ID          string // address of record
	Extension   string
	DisplayName string
	Registered  bool // a phone of the user is registered (or statically bound)
}

// Label is how the pages name the user: "Bob Sales (1002)".
func (u User) Label() string {
	num := u.Extension
	if num == "" {
		num = u.Name
	}
	if u.DisplayName == "" {
		return num
	}
	return u.DisplayName + " (" + num + ")"
}

// Switch is the running switch as the board sees it.
type Switch interface {
	// Orbits lists the parked calls of the whole cluster.
	Orbits(ctx context.Context) []park.OrbitInfo
	// Node is this node's ID: only its own orbits can be rung to a user.
	Node() string
	// Users lists the configured users.
	Users() []User
	// RetrieveTo rings user's phones with the call parked at code in the
	// table of policy and bridges the first to answer; it returns once
	// they ring, or an error whose text a person can read.
	RetrieveTo(ctx context.Context, policy string, code int, user string) (User, error)
	// Events is the Server-Sent-Events stream of GET /api/v1/events.
	Events() http.Handler
}

// Options are what a Site serves.
type Options struct {
	Accounts Accounts
	Switch   Switch
	Policies Policies // the /admin pages
	Log      zerolog.Logger
	Now      func() time.Time // default time.Now
}

// Site is the pages: an http.Handler for every path but /api/, /healthz
// and /metrics.
type Site struct {
	opts      Options
	log       zerolog.Logger
	now       func() time.Time
	sessions  *sessions
	pages     map[string]*template.Template
	mux       *http.ServeMux
	rowsCache rowsCache
}

// pageNames are the templates of whole pages; each defines "content".
var pageNames = []string{"signin", "board", "retrieve", "policies", "policy", "groups", "users", "message"}

// pages are the parsed templates, by page name. They are embedded: a
// mistake in one fails every test at once.
var pages = func() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return out
}()

// New returns the site.
func New(opts Options) *Site {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Site{opts: opts, log: opts.Log.With().Str("component", "pages").Logger(), now: opts.Now,
		sessions: newSessions(opts.Now, maxSessions), pages: pages}
	s.mux = s.routes()
	return s
}

func (s *Site) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static") // the embedded directory exists
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.signin)
	mux.Handle("POST /signout", s.guard(access{}, s.signout))
	s.boardRoutes(mux)
	s.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.message(w, r, http.StatusNotFound, "Not found", "There is no page at this address.")
	})
	return mux
}

// ServeHTTP serves the pages with headers that keep them to their own
// origin: no framing, no scripts or styles from elsewhere, no caching of
// what a session sees.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// page is what the layout renders around a page's content.
type page struct {
	Title string
	Nav   string // "board" or "admin": the tab shown as current
	Who   string // the signed-in name; "" on open pages
	Role  string
	Open  bool // no credentials configured
	Admin bool
	CSRF  string
	Flash *flash
	Wall  bool // large type for a wall display, no navigation
	Data  any
}

// newPage is a page for the visit v, taking its flash message.
func (s *Site) newPage(v *visit, title, nav string, data any) *page {
	p := &page{Title: title, Nav: nav, Data: data}
	if v != nil {
		p.Who, p.Role, p.Open, p.Admin = v.acct.Name, v.acct.Role, v.open, v.acct.Role == RoleAdmin
		p.CSRF = v.sess.csrf
		p.Flash = s.sessions.takeFlash(v.sess)
	}
	return p
}

// render writes page name with status; it renders into a buffer first, so
// that a template error is a clean 500 rather than half a page.
func (s *Site) render(w http.ResponseWriter, status int, name string, p *page) {
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.Error().Err(err).Str("page", name).Msg("page not rendered")
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// message renders a page that says one thing, such as an error.
func (s *Site) message(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	v := s.visitOf(r)
	p := s.newPage(v, title, "", struct{ Text string }{text})
	s.render(w, status, "message", p)
}

// templateFuncs are the helpers the templates use.
var templateFuncs = template.FuncMap{
	"ms":       func(t time.Time) int64 { return t.UnixMilli() },
	"duration": formatDuration,
	"lower":    strings.ToLower,
}

// formatDuration renders d as "1 h 05 min", "4 min 09 s" or "9 s"; a
// negative d is 0 s.
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int(d / time.Second)
	h, m, sc := sec/3600, sec/60%60, sec%60
	switch {
	case h > 0:
		return fmt.Sprintf("%d h %02d min", h, m)
	case m > 0:
		return fmt.Sprintf("%d min %02d s", m, sc)
	}
	return fmt.Sprintf("%d s", sc)
}
