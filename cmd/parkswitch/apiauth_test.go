package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

const testToken = "viewer-token-0123456789abcdef"

// apiCall makes one request to the admin API of ts.
func apiCall(t *testing.T, ts *testServer, method, path string, auth func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+ts.httpAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func basic(user, pw string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pw) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// TestAPIAuth runs the admin API of a real server with http.users and
// http.tokens configured.
func TestAPIAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("admin-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "http:\n  users:\n    - {name: ops, password_hash: '"+string(hash)+"', role: admin}\n"+
		"  tokens:\n    - {name: grafana, token: "+testToken+", role: viewer}\n", nil)
	var logs syncBuffer
	ts.api.log = zerolog.New(&logs)

	// Health checks and scrapers need nothing.
	for _, p := range []string{"/healthz", "/metrics"} {
		if res, _ := apiCall(t, ts, "GET", p, nil); res.StatusCode != 200 {
			t.Errorf("GET %s without credentials: %d, want 200", p, res.StatusCode)
		}
	}
	// Everything else does, known path or not.
	for _, p := range []string{"/api/v1/orbits", "/api/v1/registrations", "/api/v1/policies", "/api/v1/nothing", "/api/"} {
		res, _ := apiCall(t, ts, "GET", p, nil)
		if res.StatusCode != 401 {
			t.Errorf("GET %s without credentials: %d, want 401", p, res.StatusCode)
		}
		if got := strings.Join(res.Header.Values("WWW-Authenticate"), " | "); !strings.Contains(got, `Basic realm="parkswitch"`) || !strings.Contains(got, `Bearer realm="parkswitch"`) {
			t.Errorf("GET %s: WWW-Authenticate %q, want Basic and Bearer challenges", p, got)
		}
	}
	// The pages need a sign-in of their own (pages_test.go).
	if res, _ := apiCall(t, ts, "GET", "/", nil); res.Request.URL.Path != "/signin" {
		t.Errorf("GET / without credentials ended at %s, want the sign-in page", res.Request.URL)
	}
	if logs.String() != "" {
		t.Errorf("requests without credentials logged as failed logins:\n%s", logs.String())
	}

	tests := []struct {
		name   string
		method string
		auth   func(*http.Request)
		want   int
	}{
		{"admin reads", "GET", basic("ops", "admin-password"), 200},
		{"admin writes (no such route: 405, past authentication)", "POST", basic("ops", "admin-password"), 405},
		{"viewer token reads", "GET", bearer(testToken), 200},
		{"viewer token, scheme in lower case", "GET", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+testToken) }, 200},
		{"viewer token writes", "POST", bearer(testToken), 403},
		{"viewer token deletes", "DELETE", bearer(testToken), 403},
		{"wrong password", "GET", basic("ops", "admin-passwore"), 401},
		{"unknown user", "GET", basic("root", "admin-password"), 401},
		{"wrong token", "GET", bearer(testToken + "x"), 401},
		{"a password as a token", "GET", bearer("admin-password"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := apiCall(t, ts, tt.method, "/api/v1/orbits", tt.auth)
			if res.StatusCode != tt.want {
				t.Errorf("%s: %d %s, want %d", tt.method, res.StatusCode, body, tt.want)
			}
		})
	}
	out := logs.String()
	if n := strings.Count(out, "admin API login failed"); n != 4 {
		t.Errorf("%d failed logins logged, want 4:\n%s", n, out)
	}
	for _, secret := range []string{"admin-passwore", "admin-password", testToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"user":"root"`) || !strings.Contains(out, "a viewer may only read") {
		t.Errorf("log lacks the user of a failed login or the viewer refusal:\n%s", out)
	}
}

// TestAPILoginRateLimit: past ten failures a source is answered 429
// without its credentials being checked, even right ones.
func TestAPILoginRateLimit(t *testing.T) {
	ts := startServer(t, "http:\n  tokens:\n    - {name: ci, token: "+testToken+", role: admin}\n", nil)
	var logs syncBuffer
	ts.api.log = zerolog.New(&logs)
	for i := range maxLoginFailures {
		if res, _ := apiCall(t, ts, "GET", "/api/v1/orbits", bearer("guess-"+strings.Repeat("x", i))); res.StatusCode != 401 {
			t.Fatalf("guess %d: %d, want 401", i+1, res.StatusCode)
		}
	}
	res, _ := apiCall(t, ts, "GET", "/api/v1/orbits", bearer(testToken))
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("after %d failures: %d (Retry-After %q), want 429 with Retry-After", maxLoginFailures, res.StatusCode, res.Header.Get("Retry-After"))
	}
	if res, _ := apiCall(t, ts, "GET", "/healthz", nil); res.StatusCode != 200 {
		t.Errorf("/healthz during a lockout: %d", res.StatusCode)
	}
	if n := strings.Count(logs.String(), "refused for a while"); n != 1 {
		t.Errorf("lockout logged %d times, want once:\n%s", n, logs.String())
	}
	// The window passes.
	ts.api.mu.Lock()
	for _, f := range ts.api.failures {
		f.since = f.since.Add(-2 * loginWindow)
	}
	ts.api.mu.Unlock()
	if res, _ := apiCall(t, ts, "GET", "/api/v1/orbits", bearer(testToken)); res.StatusCode != 200 {
		t.Errorf("after the window: %d, want 200", res.StatusCode)
	}
}

// TestAPIOpenOnLoopback: with no credentials configured (the demo
// configuration) the API on a loopback listener answers without any.
func TestAPIOpenOnLoopback(t *testing.T) {
	ts := startServer(t, "", nil)
	for _, p := range []string{"/api/v1/orbits", "/api/v1/registrations", "/api/v1/policies", "/healthz", "/metrics"} {
		if res, body := apiCall(t, ts, "GET", p, nil); res.StatusCode != 200 {
			t.Errorf("GET %s: %d %s, want 200", p, res.StatusCode, body)
		}
	}
}
