package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
	"github.com/parkswitch/parkswitch/store"
)

// sseItem is one thing read from an event stream: an event, or a comment.
type sseItem struct {
	id      uint64
	typ     string
	ev      store.Event
	comment string
	at      time.Time // when the client read it
}

// sseStream is a client of GET /api/v1/events.
type sseStream struct {
	res   *http.Response
	items chan sseItem
	done  chan struct{} // closed when the stream has ended
}

// openEvents opens the event stream with query (e.g. "?from=1") and
// headers, and reads it until the server ends it or the test does.
func openEvents(t testing.TB, ts *testServer, query string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+ts.httpAddr()+"/api/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("GET /api/v1/events%s: %s %q %s", query, res.Status, res.Header.Get("Content-Type"), body)
	}
	s := &sseStream{res: res, items: make(chan sseItem, 1024), done: make(chan struct{})}
	go s.read(t)
	t.Cleanup(func() {
		cancel()
		res.Body.Close()
		<-s.done
	})
	return s
}

// read parses the stream (id, event, data lines; comments) into items.
func (s *sseStream) read(t testing.TB) {
	defer close(s.done)
	defer close(s.items)
	sc := bufio.NewScanner(s.res.Body)
	var it sseItem
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if it.typ != "" || it.comment != "" {
				it.at = time.Now()
				s.items <- it
			}
			it = sseItem{}
		case strings.HasPrefix(line, ": "):
			it.comment = line[2:]
		case strings.HasPrefix(line, "id: "):
			it.id, _ = strconv.ParseUint(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			it.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &it.ev); err != nil {
				t.Errorf("event data %q: %v", line, err)
			}
		default:
			t.Errorf("unexpected line in the event stream: %q", line)
		}
	}
}

// next returns the next event, skipping comments.
func (s *sseStream) next(t testing.TB) sseItem {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case it, ok := <-s.items:
			if !ok {
				t.Fatal("the event stream ended")
			}
			if it.comment != "" {
				continue
			}
			if it.id != it.ev.Seq || it.typ != string(it.ev.Type) {
				t.Errorf("event id %d type %s, but its data says seq %d type %s", it.id, it.typ, it.ev.Seq, it.ev.Type)
			}
			return it
		case <-timeout:
			t.Fatal("no event in 10 s")
		}
	}
}

// expect reads the next len(types) events and checks they are those, in
// that order.
func (s *sseStream) expect(t testing.TB, types ...store.EventType) []store.Event {
	t.Helper()
	var got []store.Event
	for range types {
		got = append(got, s.next(t).ev)
	}
	names := func(evs []store.Event) []store.EventType {
		out := make([]store.EventType, len(evs))
		for i, e := range evs {
			out[i] = e.Type
		}
		return out
	}
	if !slices.Equal(names(got), types) {
		t.Fatalf("events %v, want %v", names(got), types)
	}
	return got
}

// quiet checks that no event arrives for a little while.
func (s *sseStream) quiet(t testing.TB) {
	t.Helper()
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case it := <-s.items:
			if it.comment == "" {
				t.Errorf("unexpected event %s %+v", it.typ, it.ev)
			}
		case <-deadline:
			return
		}
	}
}

// bridged waits until RTP from the parked party reaches to: the switch
// bridges them once the parked phone has answered its re-INVITE, a moment
// after the phone saw it, and what it sends before is dropped.
func bridged(t testing.TB, ctx context.Context, parked, to *siptest.Call) {
	t.Helper()
	start := to.RTPReceived()
	deadline := time.Now().Add(5 * time.Second)
	for to.RTPReceived() == start {
		if time.Now().After(deadline) {
			t.Fatal("no RTP across the bridge in 5 s")
		}
		if err := parked.SendRTP(ctx, 1, 0); err != nil {
			t.Fatalf("send RTP: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// records waits until the switch has written n call records and returns
// them.
func records(t testing.TB, ts *testServer, n int) []store.CallRecord {
	t.Helper()
	var recs []store.CallRecord
	waitUntil(t, 5*time.Second, strconv.Itoa(n)+" call records", func() bool {
		res, err := http.Get("http://" + ts.httpAddr() + "/api/v1/cdr")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		recs = nil
		if err := json.NewDecoder(res.Body).Decode(&recs); err != nil || res.StatusCode != 200 {
			t.Fatalf("GET /api/v1/cdr: %s %v", res.Status, err)
		}
		return len(recs) >= n
	})
	if len(recs) != n {
		t.Fatalf("%d call records, want %d: %+v", len(recs), n, recs)
	}
	return recs
}

// legRoles lists each leg of r as role:user.
func legRoles(r store.CallRecord) []string {
	var out []string
	for _, l := range r.Legs {
		out = append(out, l.Role+":"+l.Party.User)
	}
	return out
}

// TestEventsCall: an answered call hung up gives call.started,
// call.answered and call.ended on the stream, and one call record.
func TestEventsCall(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "tcp")
	events := openEvents(t, ts, "", nil)

	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 10)
	hangUp(t, ctx, a, b, "callee")
	evs := events.expect(t, store.EventCallStarted, store.EventCallAnswered, store.EventCallEnded)
	for _, e := range evs {
		if e.CallID != a.CallID() || e.From.User != "1001" || e.At.IsZero() || e.Node == "" {
			t.Errorf("%s: %+v, want call %s from 1001", e.Type, e, a.CallID())
		}
	}
	if evs[0].To.User != "1002" || evs[1].To.User != "1002" || evs[1].To.Display != "Bob Sales" {
		t.Errorf("to: started %+v, answered %+v", evs[0].To, evs[1].To)
	}
	if evs[2].Reason != "bye from a" {
		t.Errorf("call.ended reason %q, want %q", evs[2].Reason, "bye from a")
	}
	if !(evs[0].Seq < evs[1].Seq && evs[1].Seq < evs[2].Seq) {
		t.Errorf("sequences %d %d %d not increasing", evs[0].Seq, evs[1].Seq, evs[2].Seq)
	}
	events.quiet(t)

	r := records(t, ts, 1)[0]
	if r.CallID != a.CallID() || r.From != "1001" || r.To != "1002" || r.EndReason != "bye from a" || r.Park != nil {
		t.Errorf("record %+v", r)
	}
	if r.Answered.Before(r.Started) || r.Ended.Before(r.Answered) {
		t.Errorf("record times started %v answered %v ended %v", r.Started, r.Answered, r.Ended)
	}
	if got := legRoles(r); !slices.Equal(got, []string{"caller:1001", "callee:1002"}) {
		t.Errorf("legs %v", got)
	}
	for _, l := range r.Legs {
		if l.CallID == "" || l.Answered.IsZero() || l.Ended.Before(l.Answered) {
			t.Errorf("leg %+v", l)
		}
	}
}

// TestEventsParkRetrieve: a park and its retrieve are events with the
// orbit's fields, the call is one record linking them, and a client
// resumes the stream by Last-Event-ID or ?from, filtered by ?type.
func TestEventsParkRetrieve(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "tcp")
	events := openEvents(t, ts, "", nil)

	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 10)
	code := parkCall(t, ctx, bob, b, a)
	if err := b.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := carol.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve %s: %v", code, err)
	}
	nextReInvite(t, a, "parked party on retrieve")
	talk(t, ctx, a, c, 20)
	hangUp(t, ctx, c, a, "retrieved party")

	all := []store.EventType{store.EventCallStarted, store.EventCallAnswered, store.EventParked, store.EventRetrieved, store.EventCallEnded}
	evs := events.expect(t, all...)
	parked, retrieved := evs[2], evs[3]
	for _, e := range []store.Event{parked, retrieved} {
		if e.CallID != a.CallID() || e.Policy != "DemoPark" || strconv.Itoa(e.Code) != code ||
			e.Parker.User != "1002" || e.ParkedParty.User != "1001" || e.ParkedParty.Display != "Alice Reception" {
			t.Errorf("%s: %+v", e.Type, e)
		}
	}
	if retrieved.Retriever.User != "1003" || retrieved.Retriever.Display != "Carol Support" || parked.Retriever != (store.Party{}) {
		t.Errorf("retriever: parked %+v, retrieved %+v", parked.Retriever, retrieved.Retriever)
	}
	events.quiet(t)

	r := records(t, ts, 1)[0]
	if r.CallID != a.CallID() || r.From != "1001" || r.To != "1002" || r.EndReason != "bye from a" {
		t.Errorf("record %+v", r)
	}
	if got := legRoles(r); !slices.Equal(got, []string{"caller:1001", "callee:1002", "retriever:1003"}) {
		t.Errorf("legs %v, want caller, the parker's leg released after park, retriever", got)
	}
	p := r.Park
	if p == nil {
		t.Fatal("the record of a parked call has no park")
	}
	if strconv.Itoa(p.Code) != code || p.Policy != "DemoPark" || p.Parker.User != "1002" || p.Retriever.User != "1003" || p.Ringbacks != 0 {
		t.Errorf("park %+v", p)
	}
	if p.ParkedAt.IsZero() || p.RetrievedAt.Before(p.ParkedAt) || r.Legs[1].Ended.After(r.Legs[2].Ended) {
		t.Errorf("park times: parked %v retrieved %v; parker leg ended %v", p.ParkedAt, p.RetrievedAt, r.Legs[1].Ended)
	}

	t.Run("Last-Event-ID", func(t *testing.T) {
		s := openEvents(t, ts, "", map[string]string{"Last-Event-ID": strconv.FormatUint(parked.Seq, 10)})
		got := s.expect(t, store.EventRetrieved, store.EventCallEnded)
		if got[0].Seq != retrieved.Seq {
			t.Errorf("replay from after %d starts at %d, want %d", parked.Seq, got[0].Seq, retrieved.Seq)
		}
		s.quiet(t)
	})
	t.Run("from", func(t *testing.T) {
		openEvents(t, ts, "?from="+strconv.FormatUint(evs[0].Seq, 10), nil).expect(t, all...)
	})
	t.Run("type filter", func(t *testing.T) {
		s := openEvents(t, ts, "?from=1&type=parked,retrieved", nil)
		s.expect(t, store.EventParked, store.EventRetrieved)
		s.quiet(t)
	})
}

// TestEventsRingback: an answered ringback gives ringback.started then
// ringback.answered, and the record names the parker as who took the call.
func TestEventsRingback(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) {
		o.ParkClock = scaledClock{factor: 100}
		o.Park.Ringback = 3 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	events := openEvents(t, ts, "?type=parked,ringback.started,ringback.answered,call.ended", nil)

	a, b := call(t, ctx, alice, bob, "1002")
	parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)
	var in *siptest.Incoming
	select {
	case in = <-bob.Incoming():
	case <-time.After(10 * time.Second):
		t.Fatal("no ringback")
	}
	rb, err := in.Answer(ctx)
	if err != nil {
		t.Fatalf("answer ringback: %v", err)
	}
	nextReInvite(t, a, "parked party on ringback answer")
	bridged(t, ctx, a, rb)
	talk(t, ctx, a, rb, 20)
	rb.Hangup(ctx)
	waitDone(t, a, "parked party")

	evs := events.expect(t, store.EventParked, store.EventRingbackStarted, store.EventRingbackAnswered, store.EventCallEnded)
	if e := evs[1]; e.To.User != "1002" || e.Reason != "parker" || e.Code != evs[0].Code || e.CallID != a.CallID() {
		t.Errorf("ringback.started %+v", e)
	}
	if e := evs[2]; e.Retriever.User != "1002" || e.Code != evs[0].Code || e.Parker.User != "1002" {
		t.Errorf("ringback.answered %+v", e)
	}
	r := records(t, ts, 1)[0]
	if r.Park == nil || r.Park.Ringbacks != 1 || r.Park.Retriever.User != "1002" || r.Park.RetrievedAt.IsZero() {
		t.Errorf("park of the record %+v", r.Park)
	}
	if got := legRoles(r); !slices.Equal(got, []string{"caller:1001", "callee:1002", "ringback:1002"}) {
		t.Errorf("legs %v", got)
	}
}

// TestEventsBadRequests: what the event stream and the call records
// refuse, with a message saying why, and what they accept.
func TestEventsBadRequests(t *testing.T) {
	ts := startServer(t, "", nil)
	for _, tt := range []struct {
		path, lastID string
		status       int
		says         string
	}{
		{"/api/v1/events?type=parked,bogus", "", 400, `unknown event type "bogus"`},
		{"/api/v1/events?from=x", "", 400, "from:"},
		{"/api/v1/events?from=0", "", 400, "from:"},
		{"/api/v1/events", "abc", 400, "Last-Event-ID"},
		{"/api/v1/cdr?since=yesterday", "", 400, "RFC 3339"},
		{"/api/v1/cdr?since=2026-01-02", "", 400, "RFC 3339"},
		{"/api/v1/cdr?limit=0", "", 400, "limit:"},
		{"/api/v1/cdr?limit=ten", "", 400, "limit:"},
		{"/api/v1/cdr?limit=-3", "", 400, "limit:"},
		{"/api/v1/cdr", "", 200, "[]"},
		{"/api/v1/cdr?since=2026-01-02T15:04:05Z&limit=5", "", 200, "[]"},
		{"/api/v1/cdr?limit=1000000", "", 200, "[]"},
	} {
		req, _ := http.NewRequest("GET", "http://"+ts.httpAddr()+tt.path, nil)
		if tt.lastID != "" {
			req.Header.Set("Last-Event-ID", tt.lastID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.status || !strings.Contains(string(body), tt.says) {
			t.Errorf("GET %s (Last-Event-ID %q): %d %q, want %d saying %q", tt.path, tt.lastID, res.StatusCode, body, tt.status, tt.says)
		}
	}
}

// TestEventStreamsBounded: a viewer may read the stream; past
// maxEventStreams open at once the next gets 503.
func TestEventStreamsBounded(t *testing.T) {
	ts := startServer(t, "http:\n  tokens:\n    - {name: board, token: "+testToken+", role: viewer}\n", nil)
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	for range maxEventStreams {
		openEvents(t, ts, "", auth)
	}
	req, _ := http.NewRequest("GET", "http://"+ts.httpAddr()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("stream %d: %s, want 503 with Retry-After", maxEventStreams+1, res.Status)
	}
}

// TestEventStreamEndsOnShutdown: open streams get heartbeats, and end
// when the server shuts down, without holding the shutdown up.
func TestEventStreamEndsOnShutdown(t *testing.T) {
	ts := startServerWith(t, serverSetup{heartbeat: 50 * time.Millisecond})
	s := openEvents(t, ts, "", nil)
	select {
	case it := <-s.items:
		if it.comment != "heartbeat" {
			t.Errorf("first item %+v, want a heartbeat comment", it)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end at shutdown")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a stream open", took)
	}
}

// TestEventsParkedPartyLeaves: a parked caller who hangs up gives
// parked.hungup, one nobody picks up gives abandoned; either way the call
// ends with one record whose park was never retrieved.
func TestEventsParkedPartyLeaves(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) {
		o.ParkClock = scaledClock{factor: 100}
		o.Park.Ringback = time.Second
		o.Park.MaxRingbacks = 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	events := openEvents(t, ts, "?type=parked,parked.hungup,abandoned,call.ended", nil)

	a, b := call(t, ctx, alice, bob, "1002")
	parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)
	a.Hangup(ctx)
	evs := events.expect(t, store.EventParked, store.EventParkedHungUp, store.EventCallEnded)
	if evs[1].Code != evs[0].Code || evs[1].CallID != a.CallID() || evs[2].Reason != "bye from a" {
		t.Errorf("hung up: %+v then %+v", evs[1], evs[2])
	}

	a, b = call(t, ctx, alice, bob, "1002")
	parkCall(t, ctx, bob, b, a)
	b.Hangup(ctx)
	select {
	case in := <-bob.Incoming(): // the one ringback, left ringing
		<-in.Canceled()
	case <-time.After(10 * time.Second):
		t.Fatal("no ringback")
	}
	waitDone(t, a, "abandoned party")
	evs = events.expect(t, store.EventParked, store.EventAbandoned, store.EventCallEnded)
	if evs[1].CallID != a.CallID() || evs[2].Reason != "park abandoned" {
		t.Errorf("abandoned: %+v then %+v", evs[1], evs[2])
	}

	recs := records(t, ts, 2)
	for i, want := range []struct {
		reason    string
		ringbacks int
	}{{"bye from a", 0}, {"park abandoned", 1}} {
		r := recs[i]
		if r.EndReason != want.reason || r.Park == nil || r.Park.Ringbacks != want.ringbacks ||
			!r.Park.RetrievedAt.IsZero() || r.Park.Retriever != (store.Party{}) {
			t.Errorf("record %d: %s, park %+v; want %s with %d ringbacks, not retrieved", i, r.EndReason, r.Park, want.reason, want.ringbacks)
		}
	}
}
