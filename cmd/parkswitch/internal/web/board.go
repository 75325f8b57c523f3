package web

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkswitch/parkswitch/park"
)

// boardEventTypes are the events that change the board: the script
// fetches the rows again on each.
const boardEventTypes = "parked,retrieved,ringback.started,ringback.answered,abandoned,parked.hungup"

// orbitsTimeout bounds the listing of other nodes' orbits for one page.
const orbitsTimeout = 3 * time.Second

func (s *Site) boardRoutes(mux *http.ServeMux) {
	mux.Handle("GET /{$}", s.guard(access{}, s.board))
	mux.Handle("GET /board/rows", s.guard(access{data: true}, s.boardRows))
	mux.Handle("GET /board/events", s.guard(access{data: true}, s.boardEvents))
	mux.Handle("GET /board/retrieve", s.guard(access{admin: true}, s.retrievePage))
	mux.Handle("POST /board/retrieve", s.guard(access{admin: true}, s.retrieve))
}

// boardData is the board: parked calls grouped by policy.
type boardData struct {
	Groups []boardGroup
	Total  int
	Now    time.Time // when it was rendered, for the script's clock
	Admin  bool      // Retrieve to… is offered
	Wall   bool
	Body   template.HTML // Groups rendered (template "groups")
}

type boardGroup struct {
	Policy string
	Orbits []boardOrbit
}

// boardOrbit is one parked call as the board shows it.
type boardOrbit struct {
	Policy     string
	Code       int
	Caller     string // the parked party
	Parker     string
	ParkedAt   time.Time
	RingbackAt time.Time
	ParkedFor  string
	RingsIn    string // "" while ringing
	Ringing    bool
	Elsewhere  string // the node holding the call, when it is not this one
}

// Key identifies the row, for the script and the tests.
func (o boardOrbit) Key() string { return o.Policy + "/" + strconv.Itoa(o.Code) }

// RetrieveURL is the page that rings the call to a user.
func (o boardOrbit) RetrieveURL() string {
	return "/board/retrieve?" + url.Values{"policy": {o.Policy}, "code": {strconv.Itoa(o.Code)}}.Encode()
}

// partyLabel names a party as "Alice Reception (1001)".
func partyLabel(p park.Party) string {
	switch {
	case p.Display == "" && p.User == "":
		return "unknown"
	case p.Display == "":
		return p.User
	case p.User == "":
		return p.Display
	}
	return p.Display + " (" + p.User + ")"
}

// boardOf groups orbits by policy (in the order listed: by policy, then
// code) as at now.
func boardOf(orbits []park.OrbitInfo, node string, now time.Time) boardData {
	d := boardData{Now: now, Total: len(orbits)}
	for _, o := range orbits {
		if n := len(d.Groups); n == 0 || !strings.EqualFold(d.Groups[n-1].Policy, o.Policy) {
			d.Groups = append(d.Groups, boardGroup{Policy: o.Policy})
		}
		row := boardOrbit{
			Policy: o.Policy, Code: o.Code, Caller: partyLabel(o.ParkedParty), Parker: partyLabel(o.Parker),
			ParkedAt: o.ParkedAt, RingbackAt: o.RingbackAt, ParkedFor: formatDuration(now.Sub(o.ParkedAt)),
			Ringing: o.State == park.StateRinging,
		}
		if !row.Ringing {
			row.RingsIn = formatDuration(o.RingbackAt.Sub(now))
		}
		if o.Node != "" && o.Node != node {
			row.Elsewhere = o.Node
		}
		g := &d.Groups[len(d.Groups)-1]
		g.Orbits = append(g.Orbits, row)
	}
	return d
}

// orbitsNow lists the parked calls, sorted as the board shows them.
func (s *Site) orbitsNow(r *http.Request) []park.OrbitInfo {
	ctx, cancel := context.WithTimeout(r.Context(), orbitsTimeout)
	defer cancel()
	orbits := s.opts.Switch.Orbits(ctx)
	park.SortInfos(orbits)
	return orbits
}

// boardNow is the board for visit v, its groups rendered by body.
func (s *Site) boardNow(r *http.Request, v *visit, body func(d *boardData) (template.HTML, error)) (boardData, error) {
	orbits := s.orbitsNow(r)
	d := boardOf(orbits, s.opts.Switch.Node(), s.now())
	d.Wall = r.URL.Query().Get("wall") == "1"
	d.Admin = v.acct.Role == RoleAdmin && !d.Wall // a wall display is for watching
	var err error
	d.Body, err = body(&d)
	return d, err
}

// renderGroups renders the groups of d.
func (s *Site) renderGroups(d *boardData) (template.HTML, error) {
	var b strings.Builder
	if err := s.pages["board"].ExecuteTemplate(&b, "groups", d); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil // html/template escaped it
}

// board is the park board page, rendered afresh: without the script its
// times must be right as they stand.
func (s *Site) board(w http.ResponseWriter, r *http.Request, v *visit) {
	d, err := s.boardNow(r, v, s.renderGroups)
	if err != nil {
		s.log.Error().Err(err).Msg("board not rendered")
		http.Error(w, "the board could not be rendered", http.StatusInternalServerError)
		return
	}
	p := s.newPage(v, "Park board", "board", d)
	p.Wall = d.Wall
	s.render(w, http.StatusOK, "board", p)
}

// boardRows is the board's rows alone, which the script fetches on every
// change and swaps in. The groups come from the cache while the orbits
// are as they were: the script sets the times it shows at once.
func (s *Site) boardRows(w http.ResponseWriter, r *http.Request, v *visit) {
	d, err := s.boardNow(r, v, func(d *boardData) (template.HTML, error) {
		return s.rowsCache.get(d, s.renderGroups)
	})
	if err == nil {
		err = s.renderFragment(w, "board", "rows", d)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("board rows not rendered")
	}
}

// rowsCache keeps the last groups rendered for each view (admin or not,
// which is also the wall's): however many boards fetch the rows after a
// change, they are rendered once. The lock is held while rendering, so
// that concurrent fetches wait for one render rather than make their own.
type rowsCache struct {
	mu    sync.Mutex
	views [2]rowsView
}

type rowsView struct {
	groups []boardGroup
	html   template.HTML
	ok     bool
}

func (c *rowsCache) get(d *boardData, render func(*boardData) (template.HTML, error)) (template.HTML, error) {
	i := 0
	if d.Admin {
		i = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &c.views[i]
	if v.ok && sameGroups(v.groups, d.Groups) {
		return v.html, nil
	}
	html, err := render(d)
	if err != nil {
		return "", err
	}
	*v = rowsView{groups: d.Groups, html: html, ok: true}
	return html, nil
}

// sameGroups reports whether a and b show the same calls in the same
// states, whatever times they say.
func sameGroups(a, b []boardGroup) bool {
	return slices.EqualFunc(a, b, func(x, y boardGroup) bool {
		return x.Policy == y.Policy && slices.EqualFunc(x.Orbits, y.Orbits, func(p, q boardOrbit) bool {
			p.ParkedFor, p.RingsIn, q.ParkedFor, q.RingsIn = "", "", "", ""
			return p.Policy == q.Policy && p.Code == q.Code && p.Caller == q.Caller && p.Parker == q.Parker &&
				p.ParkedAt.Equal(q.ParkedAt) && p.RingbackAt.Equal(q.RingbackAt) && p.Ringing == q.Ringing && p.Elsewhere == q.Elsewhere
		})
	})
}

// renderFragment writes template name of page's set alone.
func (s *Site) renderFragment(w http.ResponseWriter, pageName, name string, data any) error {
	var b strings.Builder
	if err := s.pages[pageName].ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "the board could not be rendered", http.StatusInternalServerError)
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	_, err := w.Write([]byte(b.String()))
	return err
}

// boardEvents is the event stream of the API, of the types that change
// the board, ending with the session.
func (s *Site) boardEvents(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // ends with the request at the latest
		select {
		case <-v.sess.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	r2 := r.Clone(ctx)
	r2.URL.RawQuery = url.Values{"type": {boardEventTypes}}.Encode()
	s.opts.Switch.Events().ServeHTTP(w, r2)
}

// retrieveData is the "Retrieve to…" page of one parked call.
type retrieveData struct {
	Orbit boardOrbit
	Users []User
}

// findOrbit is the orbit at code in the table of policy, as listed now.
func (s *Site) findOrbit(r *http.Request, policy string, code int) (boardOrbit, bool) {
	d := boardOf(s.orbitsNow(r), s.opts.Switch.Node(), s.now())
	for _, g := range d.Groups {
		if !strings.EqualFold(g.Policy, policy) {
			continue
		}
		for _, o := range g.Orbits {
			if o.Code == code {
				return o, true
			}
		}
	}
	return boardOrbit{}, false
}

// orbitParam reads the policy and code of a request.
func orbitParam(vals url.Values) (string, int, bool) {
	policy := vals.Get("policy")
	code, err := strconv.Atoi(vals.Get("code"))
	return policy, code, err == nil && policy != "" && code > 0
}

// retrievePage asks whom to ring a parked call to.
func (s *Site) retrievePage(w http.ResponseWriter, r *http.Request, v *visit) {
	policy, code, ok := orbitParam(r.URL.Query())
	if !ok {
		s.message(w, r, http.StatusBadRequest, "No such call", "Choose a parked call on the board.")
		return
	}
	o, ok := s.findOrbit(r, policy, code)
	if !ok {
		s.sessions.setFlash(v.sess, flash{Error: true, Text: fmt.Sprintf("No call is parked at %d in %s any more.", code, policy)})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	users := s.opts.Switch.Users()
	slices.SortStableFunc(users, func(a, b User) int {
		if a.Registered != b.Registered {
			if a.Registered {
				return -1
			}
			return 1
		}
		return cmp.Compare(strings.ToLower(a.Label()), strings.ToLower(b.Label()))
	})
	s.render(w, http.StatusOK, "retrieve", s.newPage(v, "Retrieve to…", "board", retrieveData{Orbit: o, Users: users}))
}

// retrieve rings the parked call to the chosen user.
func (s *Site) retrieve(w http.ResponseWriter, r *http.Request, v *visit) {
	policy, code, ok := orbitParam(r.PostForm)
	user := r.PostForm.Get("user")
	if !ok || user == "" {
		s.sessions.setFlash(v.sess, flash{Error: true, Text: "Choose a parked call and a user to ring it to."})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	o, found := s.findOrbit(r, policy, code)
	u, err := s.opts.Switch.RetrieveTo(r.Context(), policy, code, user)
	if err != nil {
		s.log.Info().Str("user", v.acct.Name).Str("policy", policy).Int("orbit", code).Str("target", user).Err(err).Msg("retrieve to refused")
		s.sessions.setFlash(v.sess, flash{Error: true, Text: sentence(err.Error())})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.log.Info().Str("user", v.acct.Name).Str("policy", policy).Int("orbit", code).Str("target", u.Name).Msg("retrieve to")
	what := fmt.Sprintf("the call parked at %d", code)
	if found {
		what = fmt.Sprintf("the call from %s parked at %d", o.Caller, code)
	}
	s.sessions.setFlash(v.sess, flash{Text: fmt.Sprintf("Ringing %s for %s.", u.Label(), what)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sentence makes an error's text a sentence: capital first (unless it
// starts with a key of the policy file, spelled as there), full stop last.
func sentence(s string) string {
	if s == "" {
		return s
	}
	if first, _, _ := strings.Cut(s, " "); !strings.Contains(first, "_") {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
