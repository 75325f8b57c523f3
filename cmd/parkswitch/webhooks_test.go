package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// hookPost is one POST a webhook receiver got.
type hookPost struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

// hookReceiver is a webhook receiver on 127.0.0.1, started before the
// switch (so that the harness's leak check ignores its listener) and
// closed after it.
type hookReceiver struct {
	srv     *httptest.Server
	posts   chan hookPost
	pending []hookPost // read while waiting for another path's
}

func newHookReceiver(t testing.TB) *hookReceiver {
	t.Helper()
	rv := &hookReceiver{posts: make(chan hookPost, 1024)}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rv.posts <- hookPost{path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()}
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

// next waits for the next POST to path; each webhook posts in order, but
// two webhooks race each other.
func (rv *hookReceiver) next(t testing.TB, path string) hookPost {
	t.Helper()
	for i, p := range rv.pending {
		if p.path == path {
			rv.pending = append(rv.pending[:i], rv.pending[i+1:]...)
			return p
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-rv.posts:
			if p.path == path {
				return p
			}
			rv.pending = append(rv.pending, p)
		case <-timeout:
			t.Fatalf("no POST to %s in 10 s", path)
		}
	}
}

// quiet checks that nothing more is posted for a while.
func (rv *hookReceiver) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case p := <-rv.posts:
		rv.pending = append(rv.pending, p)
	case <-time.After(d):
	}
	for _, p := range rv.pending {
		t.Errorf("unexpected POST to %s: %s", p.path, p.body)
	}
	rv.pending = nil
}

// signed checks a POST's X-Parkswitch-Signature as a receiver would.
func signed(t testing.TB, p hookPost, secret string) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(p.body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := p.header.Get("X-Parkswitch-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("signature %q, want %q", got, want)
	}
}

const hookSecret = "receiver-shared-secret-0123456789"

// webhooksYAML is a notify section: Slack-format park events signed to
// /slack, and retrieves only, as a Teams card, to /teams.
func webhooksYAML(base string) string {
	return "notify:\n  webhooks:\n" +
		"    - url: " + base + "/slack\n      format: slack\n      secret: " + hookSecret + "\n" +
		"    - url: " + base + "/teams\n      format: teams\n      events: [retrieved]\n"
}

// TestWebhooksPark: Carol parks Alice's call and Bob picks it up through
// the real switch; the Slack receiver gets both, with the people text and
// a valid signature, the Teams one only the retrieve.
func TestWebhooksPark(t *testing.T) {
	rv := newHookReceiver(t)
	ts := startServer(t, webhooksYAML(rv.srv.URL), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")

	a, c := call(t, ctx, alice, carol, "1003")
	code := parkCall(t, ctx, carol, c, a)
	p := rv.next(t, "/slack")
	signed(t, p, hookSecret)
	if got := p.header.Get("X-Parkswitch-Event"); got != "parked" {
		t.Errorf("event header %q", got)
	}
	var msg struct{ Text string }
	if err := json.Unmarshal(p.body, &msg); err != nil {
		t.Fatalf("slack body %s: %v", p.body, err)
	}
	if want := "Call from Alice Reception (1001) parked at " + code + " by Carol Support"; msg.Text != want {
		t.Errorf("slack text %q, want %q", msg.Text, want)
	}
	c.Hangup(ctx)

	b, err := bob.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v", code, err)
	}
	nextReInvite(t, a, "parked party on retrieve")
	p = rv.next(t, "/slack")
	signed(t, p, hookSecret)
	if err := json.Unmarshal(p.body, &msg); err != nil {
		t.Fatal(err)
	}
	if want := "Call from Alice Reception (1001) picked up at " + code + " by Bob Sales"; msg.Text != want {
		t.Errorf("slack text %q, want %q", msg.Text, want)
	}
	p = rv.next(t, "/teams")
	if p.header.Get("X-Parkswitch-Signature") != "" {
		t.Error("the unsigned webhook sent a signature")
	}
	if !strings.Contains(string(p.body), `"contentType":"application/vnd.microsoft.card.adaptive"`) ||
		!strings.Contains(string(p.body), "picked up at "+code+" by Bob Sales") {
		t.Errorf("teams body %s", p.body)
	}
	b.Hangup(ctx)
	waitDone(t, a, "retrieved party")
	rv.quiet(t, 300*time.Millisecond) // the call's end is not a park event
	metrics := metricsText(t, "http://"+ts.httpAddr())
	for _, want := range []string{
		`parkswitch_webhook_deliveries_total{result="delivered",webhook="0"} 2`,
		`parkswitch_webhook_deliveries_total{result="delivered",webhook="1"} 1`,
		`parkswitch_webhook_deliveries_total{result="failed",webhook="0"} 0`,
		`parkswitch_webhook_info{format="teams",host="` + strings.TrimPrefix(rv.srv.URL, "http://") + `",webhook="1"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestWebhooksReload: a webhook added to the file is posted to after a
// reload, and one removed is not any more.
func TestWebhooksReload(t *testing.T) {
	rv := newHookReceiver(t)
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	parkAndHangUp := func() string {
		a, c := call(t, ctx, alice, carol, "1003")
		code := parkCall(t, ctx, carol, c, a)
		c.Hangup(ctx)
		a.Hangup(ctx)
		waitDone(t, a, "parked party")
		// Events reach the store a moment later: a reload racing them
		// would count them as the new configuration's.
		stored(t, ctx, ts, a.CallID(), store.EventCallEnded)
		return code
	}

	parkAndHangUp() // no webhook yet
	data, err := os.ReadFile(ts.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ts.cfg.Path, string(data)+webhooksYAML(rv.srv.URL))
	if err := ts.reloader.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	code := parkAndHangUp()
	p := rv.next(t, "/slack")
	if !strings.Contains(string(p.body), "parked at "+code+" by Carol Support") || p.header.Get("X-Parkswitch-Event") != "parked" {
		t.Errorf("after the reload: %s %s", p.header.Get("X-Parkswitch-Event"), p.body)
	}
	p = rv.next(t, "/slack")
	if p.header.Get("X-Parkswitch-Event") != "parked.hungup" {
		t.Errorf("second post %s, want parked.hungup", p.header.Get("X-Parkswitch-Event"))
	}

	// A bad webhook is refused with the rest of the file; the one in force stays.
	writeFile(t, ts.cfg.Path, string(data)+"notify:\n  webhooks:\n    - url: ftp://x.example/TOKEN\n")
	if err := ts.reloader.reload("test"); err == nil || !strings.Contains(err.Error(), "webhook url has scheme ftp") || strings.Contains(err.Error(), "TOKEN") {
		t.Fatalf("bad webhook reload: %v", err)
	}
	if ts.webhooks.n.Len() != 2 {
		t.Errorf("%d webhooks after a refused reload, want the 2 in force", ts.webhooks.n.Len())
	}

	writeFile(t, ts.cfg.Path, string(data))
	if err := ts.reloader.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	parkAndHangUp()
	rv.quiet(t, 500*time.Millisecond) // the webhook was removed
}

// stored waits until the store has an event of type typ for callID.
func stored(t testing.TB, ctx context.Context, ts *testServer, callID string, typ store.EventType) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	events, err := ts.state.SubscribeEvents(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for e := range events {
		if e.CallID == callID && e.Type == typ {
			return
		}
	}
	t.Fatalf("no %s event for %s in the store", typ, callID)
}
