package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The pages over plain HTTP against the real server: sign-in, sessions,
// CSRF and roles. The browser test (browser_test.go) drives the same
// pages in Chromium.

// pagesYAML configures an admin, a viewer and an API token.
func pagesYAML(t testing.TB) string {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	return "http:\n  users:\n" +
		"    - {name: ops, password_hash: '" + hash("ops-password") + "', role: admin}\n" +
		"    - {name: desk, password_hash: '" + hash("desk-password") + "', role: viewer}\n" +
		"  tokens:\n    - {name: grafana, token: " + testToken + ", role: viewer}\n"
}

// browserless is a client with a cookie jar that does not follow
// redirects, so that each step's answer can be checked.
type browserless struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string // the token of the last page that had a form
}

func newBrowserless(t testing.TB, ts *testServer) *browserless {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browserless{t: t, base: "http://" + ts.httpAddr(), c: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// do sends a request; header adds headers (Origin, say) as name, value pairs.
func (b *browserless) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if m := csrfField.FindSubmatch(data); m != nil {
		b.csrf = string(m[1])
	}
	return res, string(data)
}

// expect checks a response's status and, for a redirect, where it goes.
func expect(t testing.TB, what string, res *http.Response, body string, status int, location string) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s: %d, want %d\n%s", what, res.StatusCode, status, body)
	}
	if location != "" && res.Header.Get("Location") != location {
		t.Fatalf("%s: Location %q, want %q", what, res.Header.Get("Location"), location)
	}
}

// signIn signs in through the form.
func (b *browserless) signIn(name, password string) {
	b.t.Helper()
	res, body := b.do("GET", "/signin", nil)
	expect(b.t, "sign-in page", res, body, 200, "")
	res, body = b.do("POST", "/signin", url.Values{"csrf": {b.csrf}, "name": {name}, "password": {password}, "next": {"/"}})
	expect(b.t, "sign in as "+name, res, body, 303, "/")
}

// cookie returns the named cookie the server set on res.
func cookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestPagesSignIn: the pages need a session from the sign-in form; the
// cookie is a 256-bit random ID, HttpOnly and SameSite=Lax (Secure
// behind TLS); forms need the session's token and the pages' origin;
// sign-out ends the session for good; the API keeps its own credentials.
func TestPagesSignIn(t *testing.T) {
	ts := startServer(t, pagesYAML(t), nil)
	b := newBrowserless(t, ts)

	res, body := b.do("GET", "/", nil)
	expect(t, "board before sign-in", res, body, 303, "/signin?next=%2F")
	for _, p := range []string{"/board/rows", "/board/events"} {
		res, body := b.do("GET", p, nil)
		expect(t, p+" before sign-in", res, body, 401, "")
	}

	res, body = b.do("GET", "/signin", nil)
	expect(t, "sign-in page", res, body, 200, "")
	token := b.csrf
	form := func(pw string) url.Values {
		return url.Values{"csrf": {token}, "name": {"ops"}, "password": {pw}, "next": {"/"}}
	}
	res, body = b.do("POST", "/signin", form("ops-passwore"))
	expect(t, "wrong password", res, body, 401, "")
	if !strings.Contains(body, "Wrong name or password") {
		t.Errorf("wrong password page says:\n%s", body)
	}
	token = b.csrf
	res, body = b.do("POST", "/signin", form("ops-password"), "Origin", "http://attacker.example")
	expect(t, "sign-in from another site", res, body, 403, "")
	token = b.csrf
	res, body = b.do("POST", "/signin", url.Values{"csrf": {"forged"}, "name": {"ops"}, "password": {"ops-password"}})
	expect(t, "sign-in with a forged token", res, body, 403, "")
	token = b.csrf
	res, body = b.do("POST", "/signin", form("ops-password"), "Origin", b.base)
	expect(t, "sign in", res, body, 303, "/")
	sc := cookie(res, "parkswitch_session")
	if sc == nil || len(sc.Value) != 43 || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure || sc.Path != "/" {
		t.Fatalf("session cookie %+v: want 43 characters (256 bits), HttpOnly, SameSite=Lax, not Secure over plain HTTP", sc)
	}
	res, body = b.do("GET", "/", nil)
	expect(t, "board", res, body, 200, "")
	for _, want := range []string{"No calls are parked.", "ops", "admin", `action="/signout"`} {
		if !strings.Contains(body, want) {
			t.Errorf("board lacks %q:\n%s", want, body)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}

	// The session is not an API credential: the API wants Basic or Bearer.
	res, body = b.do("GET", "/api/v1/orbits", nil)
	expect(t, "API with the session cookie alone", res, body, 401, "")
	res, body = b.do("GET", "/api/v1/orbits", nil, "Authorization", "Bearer "+testToken)
	expect(t, "API with the token", res, body, 200, "")

	// Signing out needs the token too; then the old cookie is worthless.
	res, body = b.do("POST", "/signout", url.Values{"csrf": {"stale"}})
	expect(t, "sign out with a stale token", res, body, 403, "")
	res, body = b.do("POST", "/signout", url.Values{"csrf": {b.csrf}}, "Origin", "http://attacker.example")
	expect(t, "sign out from another site", res, body, 403, "")
	res, body = b.do("POST", "/signout", url.Values{"csrf": {b.csrf}}, "Sec-Fetch-Site", "same-origin")
	expect(t, "sign out", res, body, 303, "/signin")
	replay := &http.Request{Header: http.Header{}}
	replay.AddCookie(sc)
	res, body = b.do("GET", "/", nil, "Cookie", replay.Header.Get("Cookie"))
	expect(t, "board with the signed-out cookie", res, body, 303, "/signin?next=%2F")

	// Behind a TLS proxy the cookie is Secure.
	res, body = b.do("GET", "/signin", nil, "X-Forwarded-Proto", "https")
	expect(t, "sign-in page over TLS", res, body, 200, "")
	if c := cookie(res, "parkswitch_signin"); c == nil || !c.Secure {
		t.Errorf("sign-in cookie over TLS %+v, want Secure", c)
	}
}

// TestPagesRoles: a viewer sees the board but may not ring a call to
// anyone; both roles keep their sessions until a reload changes their
// password.
func TestPagesRoles(t *testing.T) {
	ts := startServer(t, pagesYAML(t), nil)
	viewer := newBrowserless(t, ts)
	viewer.signIn("desk", "desk-password")
	res, body := viewer.do("GET", "/", nil)
	expect(t, "viewer's board", res, body, 200, "")
	if strings.Contains(body, "Retrieve to") {
		t.Errorf("a viewer's board offers Retrieve to…:\n%s", body)
	}
	res, body = viewer.do("GET", "/board/retrieve?policy=DemoPark&code=10", nil)
	expect(t, "viewer opens Retrieve to…", res, body, 403, "")
	res, body = viewer.do("POST", "/board/retrieve", url.Values{"csrf": {viewer.csrf}, "policy": {"DemoPark"}, "code": {"10"}, "user": {"1003"}})
	expect(t, "viewer posts Retrieve to…", res, body, 403, "")
	if !strings.Contains(body, "Only an admin") {
		t.Errorf("refusal says:\n%s", body)
	}

	admin := newBrowserless(t, ts)
	admin.signIn("ops", "ops-password")
	// A new password for desk, applied by a reload, ends desk's session
	// and leaves ops's.
	h, err := bcrypt.GenerateFromPassword([]byte("new-desk-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(ts.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(name: desk, password_hash: ')[^']+`)
	writeFile(t, ts.cfg.Path, re.ReplaceAllString(string(data), "${1}"+strings.ReplaceAll(string(h), "$", "$$")))
	if err := ts.reloader.reload("test"); err != nil {
		t.Fatal(err)
	}
	res, body = viewer.do("GET", "/", nil)
	expect(t, "viewer after a password change", res, body, 303, "/signin?next=%2F")
	res, body = admin.do("GET", "/", nil)
	expect(t, "admin after another user's password change", res, body, 200, "")
	viewer.signIn("desk", "new-desk-password")
}

// TestPagesLockout: failed sign-ins count with the API's failed logins;
// past the limit the source is refused, even with the right password.
func TestPagesLockout(t *testing.T) {
	ts := startServer(t, pagesYAML(t), nil)
	b := newBrowserless(t, ts)
	for i := range maxLoginFailures {
		b.do("GET", "/signin", nil)
		res, body := b.do("POST", "/signin", url.Values{"csrf": {b.csrf}, "name": {"ops"}, "password": {"guess"}})
		expect(t, "failed sign-in "+string(rune('0'+i)), res, body, 401, "")
	}
	b.do("GET", "/signin", nil)
	res, body := b.do("POST", "/signin", url.Values{"csrf": {b.csrf}, "name": {"ops"}, "password": {"ops-password"}})
	expect(t, "sign-in after the limit", res, body, 429, "")
	if !strings.Contains(body, "Too many failed sign-ins") {
		t.Errorf("lockout page says:\n%s", body)
	}
	res, _ = apiCall(t, ts, "GET", "/api/v1/orbits", basic("ops", "ops-password"))
	if res.StatusCode != 429 {
		t.Errorf("API after the page's failures: %d, want 429", res.StatusCode)
	}
}

// TestPagesOpen: with no credentials configured (loopback only) the
// pages are open and every visitor is an admin, but a form still needs
// the token of the visitor's own session.
func TestPagesOpen(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, ts, "1001", "udp"), phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	a, pb := call(t, ctx, alice, bob, "1002")
	code := parkCall(t, ctx, bob, pb, a)
	if err := pb.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	b := newBrowserless(t, ts)
	res, body := b.do("GET", "/", nil)
	expect(t, "open board", res, body, 200, "")
	if !strings.Contains(body, "open, no sign-in") || !strings.Contains(body, "Retrieve to…") {
		t.Fatalf("open board:\n%s", body)
	}
	res, body = b.do("GET", "/signin", nil)
	expect(t, "sign-in on open pages", res, body, 303, "/")
	res, body = b.do("GET", "/board/retrieve?policy=DemoPark&code="+code, nil)
	expect(t, "open Retrieve to… page", res, body, 200, "")
	retrieve := func(token string) url.Values {
		return url.Values{"csrf": {token}, "policy": {"DemoPark"}, "code": {code}, "user": {"1003"}}
	}
	res, body = b.do("POST", "/board/retrieve", retrieve("forged"))
	expect(t, "open pages, forged token", res, body, 403, "")
	other := newBrowserless(t, ts)
	other.do("GET", "/", nil)
	res, body = other.do("POST", "/board/retrieve", retrieve(b.csrf))
	expect(t, "open pages, another browser's token", res, body, 403, "")
	select {
	case in := <-carol.Incoming():
		t.Fatalf("a refused form rang 1003 (%s)", in.CallID)
	case <-time.After(200 * time.Millisecond):
	}
	res, body = b.do("POST", "/board/retrieve", retrieve(b.csrf))
	expect(t, "open pages, Retrieve to…", res, body, 303, "/")
	select {
	case in := <-carol.Incoming():
		if err := in.Reject(486); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("1003 was not rung")
	}
	waitUntil(t, 5*time.Second, "the rejected ring to end", func() bool { return ts.sw.Lot().InUse("DemoPark") == 1 })
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the orbit to go", func() bool { return ts.sw.Lot().InUse("DemoPark") == 0 })
	res, body = b.do("POST", "/board/retrieve", retrieve(b.csrf))
	expect(t, "open pages, Retrieve to… of nothing", res, body, 303, "/")
	res, body = b.do("GET", "/", nil)
	expect(t, "board after", res, body, 200, "")
	if !strings.Contains(body, "No call is parked at "+code+" in DemoPark on this switch any more.") {
		t.Errorf("board does not say why nothing was rung:\n%s", body)
	}
}

// TestPagesBoardRetrieveTo: a parked call is on the board with its code,
// caller, parker and times; Retrieve to… rings the chosen user, who
// answers and talks to the parked party; the board is empty after.
func TestPagesBoardRetrieveTo(t *testing.T) {
	ts := startServer(t, pagesYAML(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob := phone(t, ctx, ts, "1001", "udp"), phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	a, pb := call(t, ctx, alice, bob, "1002")
	code := parkCall(t, ctx, bob, pb, a)
	if err := pb.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	b := newBrowserless(t, ts)
	b.signIn("ops", "ops-password")
	res, rows := b.do("GET", "/board/rows", nil)
	expect(t, "board rows", res, rows, 200, "")
	for _, want := range []string{`data-key="DemoPark/` + code + `"`, "<h2>DemoPark", "Alice Reception (1001)", "Bob Sales (1002)",
		`class="until" data-until=`, "/board/retrieve?code=" + code + "&amp;policy=DemoPark"} {
		if !strings.Contains(rows, want) {
			t.Errorf("board rows lack %q:\n%s", want, rows)
		}
	}
	res, body := b.do("GET", "/board/retrieve?policy=DemoPark&code="+code, nil)
	expect(t, "Retrieve to… page", res, body, 200, "")
	if !strings.Contains(body, `<option value="1003">Carol Support (3003)</option>`) || !strings.Contains(body, "Dave Warehouse (1004) (no phone registered)") {
		t.Errorf("Retrieve to… page lists:\n%s", body)
	}
	res, body = b.do("POST", "/board/retrieve", url.Values{"csrf": {b.csrf}, "policy": {"DemoPark"}, "code": {code}, "user": {"1003"}})
	expect(t, "Retrieve to 1003", res, body, 303, "/")
	c := answerNext(t, ctx, carol)
	nextReInvite(t, a, "parked party, picked up by 1003")
	talk(t, ctx, a, c, 30)
	res, body = b.do("GET", "/", nil)
	expect(t, "board after the pickup", res, body, 200, "")
	if !strings.Contains(body, "Ringing Carol Support (3003) for the call from Alice Reception (1001) parked at "+code+".") || !strings.Contains(body, "No calls are parked.") {
		t.Errorf("board after the pickup:\n%s", body)
	}
	hangUp(t, ctx, c, a, "parked party")
}
