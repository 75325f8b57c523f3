package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/parkswitch/parkswitch/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// posted is one request a receiver got.
type posted struct {
	n      int // 1 for the first request
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an HTTP server on 127.0.0.1 that records every POST and
// answers as answer says (200 when nil).
type receiver struct {
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter) // runs before the answer is written
	reqs   chan posted

	mu sync.Mutex
	n  int
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rv := &receiver{answer: answer, reqs: make(chan posted, 4096)}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rv.mu.Lock()
		rv.n++
		n := rv.n
		rv.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %d: %s with Content-Type %q", n, r.Method, r.Header.Get("Content-Type"))
		}
		rv.reqs <- posted{n: n, header: r.Header.Clone(), body: body, at: time.Now()}
		if rv.answer != nil {
			rv.answer(n, w)
		}
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) count() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.n
}

// next waits for the next request.
func (rv *receiver) next(t *testing.T) posted {
	t.Helper()
	select {
	case p := <-rv.reqs:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no request in 10 s")
	}
	return posted{}
}

// none checks that no request arrives for a little while.
func (rv *receiver) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p := <-rv.reqs:
		t.Errorf("unexpected request %d: %s", p.n, p.body)
	case <-time.After(d):
	}
}

// fastOptions are Options with short timers and a registry of the test's.
func fastOptions(log io.Writer) (Options, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return Options{
		Logger:     zerolog.New(log).Level(zerolog.DebugLevel),
		Registry:   reg,
		Backoff:    10 * time.Millisecond,
		MaxBackoff: 3 * time.Second,
		Timeout:    2 * time.Second,
		Flush:      time.Second,
	}, reg
}

func startNotifier(t *testing.T, hooks []Webhook, o Options) *Notifier {
	t.Helper()
	n, err := New(hooks, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// deliveries reads parkswitch_webhook_deliveries_total of webhook 0.
func deliveries(n *Notifier, result string) int {
	return int(testutil.ToFloat64(n.deliveries.WithLabelValues("0", result)))
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hmacOf is the receiver's own check of the signature header.
func hmacOf(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestDeliverFormats posts one event in each format to its own receiver
// and checks the body, the signature and the headers there.
func TestDeliverFormats(t *testing.T) {
	const secret = "s3cret-of-the-receiver-0123456789"
	tests := []struct {
		format Format
		text   func(m map[string]any) any
	}{
		{FormatJSON, func(m map[string]any) any { return m["type"] }},
		{FormatSlack, func(m map[string]any) any { return m["text"] }},
		{FormatMattermost, func(m map[string]any) any { return m["text"] }},
		{FormatTeams, func(m map[string]any) any {
			return m["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any)["body"].([]any)[1].(map[string]any)["text"]
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.format), func(t *testing.T) {
			rv := newReceiver(t, nil)
			o, _ := fastOptions(io.Discard)
			n := startNotifier(t, []Webhook{{URL: rv.srv.URL + "/hook", Format: tc.format, Secret: secret}}, o)
			n.Notify(parkEvent(store.EventParked))
			p := rv.next(t)
			if got, want := p.header.Get(HeaderSignature), hmacOf(secret, p.body); got != want {
				t.Errorf("signature %q, want %q", got, want)
			}
			if !Verify(secret, p.body, p.header.Get(HeaderSignature)) || Verify("other", p.body, p.header.Get(HeaderSignature)) {
				t.Error("Verify disagrees with the receiver")
			}
			if got := p.header.Get(HeaderEvent); got != "parked" {
				t.Errorf("%s %q", HeaderEvent, got)
			}
			if got := p.header.Get(HeaderDelivery); got != "pbx1-7" {
				t.Errorf("%s %q", HeaderDelivery, got)
			}
			var m map[string]any
			if err := json.Unmarshal(p.body, &m); err != nil {
				t.Fatalf("body %s: %v", p.body, err)
			}
			want := any(parkedText)
			if tc.format == FormatJSON {
				want = "parked"
			}
			if got := tc.text(m); got != want {
				t.Errorf("body %s: got %v, want %v", p.body, got, want)
			}
			waitFor(t, "the delivery to be counted", func() bool { return deliveries(n, resultDelivered) == 1 })
		})
	}
}

func TestDeliverNoSecretNoSignature(t *testing.T) {
	rv := newReceiver(t, nil)
	o, _ := fastOptions(io.Discard)
	n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
	n.Notify(parkEvent(store.EventParked))
	if p := rv.next(t); p.header.Get(HeaderSignature) != "" {
		t.Errorf("signature %q sent without a secret", p.header.Get(HeaderSignature))
	}
}

// TestDeliverEventFilter: a webhook gets the types it lists, and the park
// events when it lists none.
func TestDeliverEventFilter(t *testing.T) {
	all, some := newReceiver(t, nil), newReceiver(t, nil)
	o, _ := fastOptions(io.Discard)
	n := startNotifier(t, []Webhook{
		{URL: all.srv.URL, Format: FormatJSON},
		{URL: some.srv.URL, Format: FormatJSON, Events: []store.EventType{store.EventCallStarted, store.EventRetrieved}},
	}, o)
	for i, typ := range store.EventTypes {
		e := parkEvent(typ)
		e.Seq = uint64(i + 1)
		n.Notify(e)
	}
	var gotAll, gotSome []string
	for range ParkEvents {
		gotAll = append(gotAll, all.next(t).header.Get(HeaderEvent))
	}
	for range 2 {
		gotSome = append(gotSome, some.next(t).header.Get(HeaderEvent))
	}
	all.none(t, 200*time.Millisecond)
	some.none(t, 0)
	if want := "parked retrieved ringback.started ringback.answered abandoned parked.hungup"; strings.Join(gotAll, " ") != want {
		t.Errorf("default events %v, want %s", gotAll, want)
	}
	if want := "call.started retrieved"; strings.Join(gotSome, " ") != want {
		t.Errorf("listed events %v, want %s", gotSome, want)
	}
}

// TestDeliverRetries: 500 twice, then 200: three tries of the same body
// with the same delivery id, one delivery counted.
func TestDeliverRetries(t *testing.T) {
	rv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	o, _ := fastOptions(io.Discard)
	n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatSlack}}, o)
	n.Notify(parkEvent(store.EventParked))
	first := rv.next(t)
	for range 2 {
		p := rv.next(t)
		if !bytes.Equal(p.body, first.body) || p.header.Get(HeaderDelivery) != first.header.Get(HeaderDelivery) {
			t.Errorf("retry %d differs: %s %s", p.n, p.body, p.header.Get(HeaderDelivery))
		}
	}
	waitFor(t, "the delivery", func() bool { return deliveries(n, resultDelivered) == 1 })
	rv.none(t, 200*time.Millisecond)
	if f := deliveries(n, resultFailed); f != 0 {
		t.Errorf("failed %d", f)
	}
}

// TestDeliverRetryAfter: a 429 with Retry-After: 1 holds the next try back
// a second, though the backoff alone would be 10 ms.
func TestDeliverRetryAfter(t *testing.T) {
	rv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	o, _ := fastOptions(io.Discard)
	n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
	n.Notify(parkEvent(store.EventParked))
	a, b := rv.next(t), rv.next(t)
	if gap := b.at.Sub(a.at); gap < 950*time.Millisecond || gap > 2500*time.Millisecond {
		t.Errorf("second try %v after the 429 with Retry-After: 1", gap)
	}
	waitFor(t, "the delivery", func() bool { return deliveries(n, resultDelivered) == 1 })
}

// TestDeliverGivesUp: a receiver that always answers 503 gets exactly
// Attempts tries, then the event counts as failed.
func TestDeliverGivesUp(t *testing.T) {
	rv := newReceiver(t, func(int, http.ResponseWriter) {})
	rv.answer = func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }
	o, _ := fastOptions(io.Discard)
	o.Attempts = 3
	n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
	n.Notify(parkEvent(store.EventParked))
	for range 3 {
		rv.next(t)
	}
	waitFor(t, "the failure", func() bool { return deliveries(n, resultFailed) == 1 })
	rv.none(t, 300*time.Millisecond)
	if d := deliveries(n, resultDelivered); d != 0 {
		t.Errorf("delivered %d", d)
	}
}

// TestDeliverRefusals: a 4xx other than 408 and 429, and a redirect, are
// not tried again, and the redirect is not followed.
func TestDeliverRefusals(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	for _, tc := range []struct {
		name   string
		answer func(int, http.ResponseWriter)
	}{
		{"400", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadRequest) }},
		{"404", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }},
		{"redirect", func(_ int, w http.ResponseWriter) {
			w.Header().Set("Location", elsewhere.srv.URL+"/stolen")
			w.WriteHeader(http.StatusTemporaryRedirect)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rv := newReceiver(t, tc.answer)
			o, _ := fastOptions(io.Discard)
			n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
			n.Notify(parkEvent(store.EventParked))
			rv.next(t)
			waitFor(t, "the failure", func() bool { return deliveries(n, resultFailed) == 1 })
			rv.none(t, 200*time.Millisecond)
			elsewhere.none(t, 0)
		})
	}
}

// TestDeliverQueueBound: while the receiver holds the first post, a queue
// of 4 takes 4 more events; the next 3 push the oldest out, and exactly
// those 3 are counted dropped and never posted.
func TestDeliverQueueBound(t *testing.T) {
	release := make(chan struct{})
	rv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			<-release
		}
	})
	o, _ := fastOptions(io.Discard)
	o.QueueLen = 4
	n := startNotifier(t, []Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
	event := func(seq int) store.Event {
		e := parkEvent(store.EventParked)
		e.Seq = uint64(seq)
		return e
	}
	n.Notify(event(1))
	if p := rv.next(t); p.header.Get(HeaderDelivery) != "pbx1-1" {
		t.Fatalf("first post %s", p.header.Get(HeaderDelivery))
	}
	start := time.Now()
	for seq := 2; seq <= 8; seq++ {
		n.Notify(event(seq))
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("queuing 7 events behind a held post took %v", d)
	}
	if got := deliveries(n, resultDropped); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	if q := n.hooks[0].q.len(); q != 4 {
		t.Errorf("queue holds %d, want 4", q)
	}
	close(release)
	var seqs []string
	for range 4 {
		seqs = append(seqs, rv.next(t).header.Get(HeaderDelivery))
	}
	if want := "pbx1-5 pbx1-6 pbx1-7 pbx1-8"; strings.Join(seqs, " ") != want {
		t.Errorf("posted after the held one: %v, want %s (the oldest dropped)", seqs, want)
	}
	waitFor(t, "5 deliveries", func() bool { return deliveries(n, resultDelivered) == 5 })
	rv.none(t, 200*time.Millisecond)
}

// TestDeliverHangingReceiver: a receiver that never answers costs each try
// its timeout; queuing stays instant; Close returns within its flush bound
// and counts what was not delivered.
func TestDeliverHangingReceiver(t *testing.T) {
	stop := make(chan struct{})
	rv := newReceiver(t, func(int, http.ResponseWriter) { <-stop })
	t.Cleanup(func() { close(stop) }) // runs before rv.srv.Close
	o, _ := fastOptions(io.Discard)
	o.Timeout, o.Attempts, o.Flush = 300*time.Millisecond, 2, 500*time.Millisecond
	n, err := New([]Webhook{{URL: rv.srv.URL, Format: FormatTeams}}, o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for seq := 1; seq <= 100; seq++ {
		e := parkEvent(store.EventParked)
		e.Seq = uint64(seq)
		n.Notify(e)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("queuing 100 events for a hanging receiver took %v", d)
	}
	a, b := rv.next(t), rv.next(t)
	if gap := b.at.Sub(a.at); gap < 300*time.Millisecond || gap > 2*time.Second {
		t.Errorf("second try %v after the first; the timeout is 300 ms", gap)
	}
	waitFor(t, "the first event to fail", func() bool { return deliveries(n, resultFailed) >= 1 })
	start = time.Now()
	n.Close(context.Background())
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Close took %v with a 500 ms flush", d)
	}
	total := deliveries(n, resultFailed) + deliveries(n, resultDropped) + deliveries(n, resultDelivered)
	if total != 100 || deliveries(n, resultDelivered) != 0 {
		t.Errorf("failed %d + dropped %d + delivered %d, want 100 not delivered",
			deliveries(n, resultFailed), deliveries(n, resultDropped), deliveries(n, resultDelivered))
	}
	n.Notify(parkEvent(store.EventParked)) // after Close: nothing, no panic
}

// TestDeliverFlushOnClose: what is queued when Close is called is still
// delivered while the flush lasts.
func TestDeliverFlushOnClose(t *testing.T) {
	rv := newReceiver(t, nil)
	o, _ := fastOptions(io.Discard)
	n, err := New([]Webhook{{URL: rv.srv.URL, Format: FormatJSON}}, o)
	if err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq <= 20; seq++ {
		e := parkEvent(store.EventParked)
		e.Seq = uint64(seq)
		n.Notify(e)
	}
	n.Close(context.Background())
	if d := deliveries(n, resultDelivered); d != 20 || rv.count() != 20 {
		t.Errorf("delivered %d, receiver got %d, want 20", d, rv.count())
	}
}

// TestDeliverLogsNoSecret: the URL's path and query (where Slack and Teams
// keep their tokens) and the HMAC secret never reach the log, whatever
// goes wrong.
func TestDeliverLogsNoSecret(t *testing.T) {
	const (
		token  = "T000/B000/XXXXtokenXXXX"
		query  = "sig=QUERYSECRET"
		secret = "hmac-key-that-must-stay-private"
	)
	rv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "upstream error")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() // nothing listens there once closed
	ln.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	o, _ := fastOptions(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}))
	o.Attempts, o.Timeout = 2, 500*time.Millisecond
	n := startNotifier(t, []Webhook{
		{URL: rv.srv.URL + "/services/" + token + "?" + query, Format: FormatSlack, Secret: secret},
		{URL: refused + "/services/" + token + "?" + query, Format: FormatTeams, Secret: secret},
		{URL: "http://user:" + secret + "@" + strings.TrimPrefix(rv.srv.URL, "http://") + "/" + token, Format: FormatJSON},
	}, o)
	n.Notify(parkEvent(store.EventParked))
	waitFor(t, "all three to fail", func() bool {
		return testutil.ToFloat64(n.deliveries.WithLabelValues("0", resultFailed)) == 1 &&
			testutil.ToFloat64(n.deliveries.WithLabelValues("1", resultFailed)) == 1 &&
			testutil.ToFloat64(n.deliveries.WithLabelValues("2", resultFailed)) == 1
	})
	n.Close(context.Background())
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, s := range []string{"XXXXtoken", "QUERYSECRET", secret, "services"} {
		if strings.Contains(out, s) {
			t.Errorf("the log holds %q:\n%s", s, out)
		}
	}
	for _, s := range []string{`"host":"` + strings.TrimPrefix(rv.srv.URL, "http://") + `"`, `"host":"` + strings.TrimPrefix(refused, "http://") + `"`, "given up", "upstream error", "connection refused"} {
		if !strings.Contains(out, s) {
			t.Errorf("the log lacks %q:\n%s", s, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSetWebhooks: the same list changes nothing; a new one takes over
// at once, and what the old one had queued is still delivered.
func TestSetWebhooks(t *testing.T) {
	hold := make(chan struct{})
	first := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			<-hold
		}
	})
	second := newReceiver(t, nil)
	o, _ := fastOptions(io.Discard)
	cfg := []Webhook{{URL: first.srv.URL, Format: FormatJSON}}
	n := startNotifier(t, cfg, o)
	if changed, err := n.SetWebhooks([]Webhook{{URL: first.srv.URL, Format: FormatJSON}}); changed || err != nil {
		t.Fatalf("the same webhooks: changed %v, %v", changed, err)
	}
	n.Notify(parkEvent(store.EventParked)) // held at the receiver
	first.next(t)
	n.Notify(parkEvent(store.EventRetrieved)) // queued behind it
	if changed, err := n.SetWebhooks([]Webhook{{URL: second.srv.URL, Format: FormatSlack}}); !changed || err != nil {
		t.Fatalf("new webhooks: changed %v, %v", changed, err)
	}
	n.Notify(parkEvent(store.EventAbandoned))
	if p := second.next(t); p.header.Get(HeaderEvent) != "abandoned" {
		t.Errorf("the new webhook got %s", p.header.Get(HeaderEvent))
	}
	close(hold)
	if p := first.next(t); p.header.Get(HeaderEvent) != "retrieved" {
		t.Errorf("the old webhook flushed %s", p.header.Get(HeaderEvent))
	}
	first.none(t, 100*time.Millisecond)
	if _, err := n.SetWebhooks(make([]Webhook, MaxWebhooks+1)); err == nil {
		t.Error("too many webhooks accepted")
	}
	if _, err := n.SetWebhooks([]Webhook{{URL: "ftp://x.example/", Format: FormatJSON}}); err == nil {
		t.Error("an ftp URL accepted")
	}
	if n.Len() != 1 {
		t.Errorf("%d webhooks after refused changes, want the 1 in force", n.Len())
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"3600", time.Minute}, // capped
		{"-5", 0},
		{"soon", 0},
		{now.Add(20 * time.Second).Format(http.TimeFormat), 20 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.v, now, time.Minute); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for try := 1; try <= 40; try++ {
		full := min(time.Second<<min(try-1, 20), 30*time.Second)
		for range 50 {
			d := backoff(try, time.Second, 30*time.Second)
			if d < full/2 || d > full {
				t.Fatalf("try %d: backoff %v outside [%v, %v]", try, d, full/2, full)
			}
		}
	}
}

func TestNewRefusesBadWebhooks(t *testing.T) {
	for _, w := range []Webhook{
		{URL: "https://hooks.example/x", Format: "xml"},
		{URL: "hooks.example/x", Format: FormatJSON},
		{URL: "https:///x", Format: FormatJSON},
		{URL: "mailto:ops@example.com", Format: FormatJSON},
	} {
		if n, err := New([]Webhook{w}, Options{}); err == nil {
			n.Close(context.Background())
			t.Errorf("%+v accepted", w)
		}
	}
}

// TestQueueRing exercises the ring's wrap-around directly.
func TestQueueRing(t *testing.T) {
	q := newQueue(3)
	dropped := 0
	for i := 1; i <= 10; i++ {
		dropped += q.push(store.Event{Seq: uint64(i)})
		if i%4 == 0 {
			q.pop()
		}
	}
	var got []string
	for {
		e, ok, _ := q.pop()
		if !ok {
			break
		}
		got = append(got, strconv.FormatUint(e.Seq, 10))
	}
	if strings.Join(got, " ") != "8 9 10" || dropped != 5 {
		t.Errorf("left %v after dropping %d, want 8 9 10 after 5", got, dropped)
	}
	q.close()
	if q.push(store.Event{}) != 1 {
		t.Error("a closed queue took an event")
	}
}
