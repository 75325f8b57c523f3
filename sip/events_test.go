package sip

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
	"github.com/parkswitch/parkswitch/store/natsstore"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

func testLog(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// counts reads a queue's counters for kind.
func counts(q *eventQueue, kind string) (published, dropped, failed float64) {
	return testutil.ToFloat64(q.published.WithLabelValues(kind)),
		testutil.ToFloat64(q.dropped.WithLabelValues(kind)),
		testutil.ToFloat64(q.failed.WithLabelValues(kind))
}

// readEvents takes n events from seq 1 of st.
func readEvents(t *testing.T, st store.Events, n int) []store.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := st.SubscribeEvents(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for len(out) < n {
		select {
		case e := <-ch:
			out = append(out, e)
		case <-ctx.Done():
			t.Fatalf("%d of %d events in the store", len(out), n)
		}
	}
	return out
}

// TestEventQueueFull: a queue whose writer is behind drops what does not
// fit, counted per kind, and what fit reaches the store in order; after
// close nothing is queued.
func TestEventQueueFull(t *testing.T) {
	st := memstore.New(memstore.Options{}).Open("n1", "")
	defer st.Close()
	q := newEventQueue(st, testLog(t), nil, 8)
	for i := range 10 {
		q.event(store.Event{Type: store.EventParked, Code: 10 + i})
	}
	q.record(store.CallRecord{CallID: "r1"})
	if p, d, _ := counts(q, kindEvent); p != 0 || d != 2 {
		t.Errorf("events published %v dropped %v before the writer ran, want 0 and 2", p, d)
	}
	if _, d, _ := counts(q, kindRecord); d != 1 {
		t.Errorf("records dropped %v, want 1", d)
	}
	var wg sync.WaitGroup
	q.start(&wg)
	q.close(context.Background())
	wg.Wait()
	if p, _, f := counts(q, kindEvent); p != 8 || f != 0 {
		t.Errorf("events published %v failed %v after close, want 8 and 0", p, f)
	}
	for i, e := range readEvents(t, st, 8) {
		if e.Code != 10+i {
			t.Errorf("event %d has code %d, want %d (queue order)", i, e.Code, 10+i)
		}
	}
	q.event(store.Event{Type: store.EventParked})
	if _, d, _ := counts(q, kindEvent); d != 3 {
		t.Errorf("an event queued after close: dropped %v, want 3", d)
	}
}

// openNATS opens a store on servers, with writes bounded by opTimeout.
func openNATS(t *testing.T, servers []*natstest.Server, opTimeout time.Duration) *natsstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := natsstore.Open(ctx, natsstore.Options{
		URLs: natstest.URLs(servers), NodeID: "n1", Logger: testLog(t), OpTimeout: opTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestEventQueueStoreDown: with the NATS server gone every write fails at
// once (store.ErrUnavailable); each is counted, none retried, and the
// queue goes on.
func TestEventQueueStoreDown(t *testing.T) {
	srv := natstest.StartServer(t, "events")
	st := openNATS(t, []*natstest.Server{srv}, time.Second)
	var logs lockedBuffer
	q := newEventQueue(st, zerolog.New(&logs), nil, 64)
	var wg sync.WaitGroup
	q.start(&wg)
	defer wg.Wait()
	defer q.close(context.Background())
	q.event(store.Event{Type: store.EventCallStarted, CallID: "up"})
	waitFor(t, "the first event written", func() bool { p, _, _ := counts(q, kindEvent); return p == 1 })

	srv.Stop()
	const n = 40
	for range n {
		q.event(store.Event{Type: store.EventCallEnded, CallID: "down"})
	}
	q.record(store.CallRecord{CallID: "down"})
	waitFor(t, "every write to be tried", func() bool { _, _, f := counts(q, kindRecord); return f == 1 })
	if p, d, f := counts(q, kindEvent); p != 1 || d != 0 || f != n {
		t.Errorf("published %v, dropped %v, failed %v; want 1, 0 and the %d written while down", p, d, f, n)
	}
	if n := strings.Count(logs.String(), "event not written to the store"); n != 1 {
		t.Errorf("%d warnings for 41 failed writes in a burst, want 1 (rate-limited):\n%s", n, logs.String())
	}
}

// lockedBuffer is a log the queue writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestEventQueueFlushBounded: on a cluster that lost its quorum a write
// fails, at once or at the store's bound; close gives up after the flush
// time, aborting a batch in progress and dropping the rest, rather than
// waiting for every batch to fail. Every event is counted once.
func TestEventQueueFlushBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	servers := natstest.StartCluster(t, 3)
	st := openNATS(t, servers[:1], time.Second)
	q := newEventQueue(st, testLog(t), nil, 1024)
	q.flush = 300 * time.Millisecond
	var wg sync.WaitGroup
	q.start(&wg)
	q.event(store.Event{Type: store.EventCallStarted, CallID: "up"})
	waitFor(t, "the first event written", func() bool { p, _, _ := counts(q, kindEvent); return p == 1 })

	servers[1].Stop()
	servers[2].Stop()
	q.event(store.Event{Type: store.EventCallEnded, CallID: "no quorum"})
	waitFor(t, "a write to time out", func() bool { _, _, f := counts(q, kindEvent); return f == 1 })
	// More than one batch: the writer takes at most eventBatch of them
	// into the write close aborts, and close drops what is left.
	const n = 2 * eventBatch
	for range n {
		q.event(store.Event{Type: store.EventCallEnded, CallID: "no quorum"})
	}
	start := time.Now()
	q.close(context.Background())
	wg.Wait()
	took := time.Since(start)
	p, d, f := counts(q, kindEvent)
	t.Logf("close took %v (flush %v, write bound 1 s): published %v, failed %v, dropped %v", took, q.flush, p, f, d)
	if p != 1 || p+d+f != n+2 {
		t.Errorf("published %v + dropped %v + failed %v, want 1 + %d", p, d, f, n+1)
	}
	if took > 3*time.Second {
		t.Errorf("close took %v: it waited for the store rather than its flush time", took)
	}
}

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

// TestParkEventTypes: each step of an orbit the SPEC names becomes one
// event with the orbit's fields; the others become none.
func TestParkEventTypes(t *testing.T) {
	ports, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), 24000, 24010)
	if err != nil {
		t.Fatal(err)
	}
	dir := NewDirectory([]User{{ID: "1002@contoso.com", Name: "1002", DisplayName: "Bob"}}, nil)
	s, err := New(Options{Domain: "contoso.com", Listen: []Listen{{Network: "udp", Addr: "127.0.0.1:0"}}, Ports: ports, Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	alice := park.Party{User: "1001", Display: "Alice"}
	bob := park.Party{User: "1002", Display: "Bob"}
	carol := park.Party{User: "1003"}
	orbit := park.OrbitInfo{Policy: "DemoPark", Code: 10, ParkedParty: alice, Parker: bob}
	tests := []struct {
		kind    park.EventKind
		target  string
		want    store.EventType // "" for none
		reason  string
		to, ret string
	}{
		{park.EventPark, "", store.EventParked, "", "", ""},
		{park.EventRetrieve, "", store.EventRetrieved, "", "", "1003"},
		{park.EventRingback, "1002", store.EventRingbackStarted, "parker", "1002", ""},
		{park.EventFallback, "op", store.EventRingbackStarted, "fallback", "op", ""},
		{park.EventRingbackAnswered, "1002", store.EventRingbackAnswered, "", "", "1002"},
		{park.EventAbandon, "", store.EventAbandoned, "not picked up after max_ringbacks", "", ""},
		{park.EventHangup, "", store.EventParkedHungUp, "parked party hung up", "", ""},
		{park.EventRingbackUnanswered, "1002", "", "", "", ""},
		{park.EventRepark, "", "", "", "", ""},
		{park.EventRefused, "", "", "", "", ""},
	}
	for _, tt := range tests {
		s.onParkEvent(park.Event{Kind: tt.kind, Orbit: orbit, CallID: "c1", Target: tt.target, By: carol})
		select {
		case it := <-s.events.q:
			e := it.ev
			if tt.want == "" {
				t.Errorf("%s published %s", tt.kind, e.Type)
				continue
			}
			if e.Type != tt.want || e.CallID != "c1" || e.Policy != "DemoPark" || e.Code != 10 ||
				e.Parker.User != "1002" || e.ParkedParty.User != "1001" || e.At.IsZero() {
				t.Errorf("%s published %+v", tt.kind, e)
			}
			if e.Reason != tt.reason || e.To.User != tt.to || e.Retriever.User != tt.ret {
				t.Errorf("%s: reason %q to %q retriever %q, want %q %q %q", tt.kind, e.Reason, e.To.User, e.Retriever.User, tt.reason, tt.to, tt.ret)
			}
		default:
			if tt.want != "" {
				t.Errorf("%s published nothing, want %s", tt.kind, tt.want)
			}
		}
	}
	if err := s.Shutdown(context.Background()); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// batchSink is a store that records the size of each AppendLog batch.
type batchSink struct {
	store.Store
	mu      sync.Mutex
	batches []int
}

func (b *batchSink) AppendLog(ctx context.Context, entries []store.LogEntry) []error {
	b.mu.Lock()
	b.batches = append(b.batches, len(entries))
	b.mu.Unlock()
	return store.AppendLog(ctx, b.Store, entries)
}

// TestEventQueueLingers: entries queued within the linger of the first go
// to the store in one batch, not one round trip each.
func TestEventQueueLingers(t *testing.T) {
	st := &batchSink{Store: memstore.New(memstore.Options{}).Open("n1", "")}
	defer st.Close()
	q := newEventQueue(st, testLog(t), nil, 64)
	q.linger = 300 * time.Millisecond
	var wg sync.WaitGroup
	q.start(&wg)
	q.event(store.Event{Type: store.EventCallStarted, CallID: "c1"})
	time.Sleep(30 * time.Millisecond) // the writer has long taken the first
	q.event(store.Event{Type: store.EventCallAnswered, CallID: "c1"})
	q.record(store.CallRecord{CallID: "c1"})
	for _, e := range readEvents(t, st, 2) {
		if e.CallID != "c1" {
			t.Errorf("event %+v", e)
		}
	}
	q.close(context.Background())
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.batches) != 1 || st.batches[0] != 3 {
		t.Errorf("batches written: %v, want one of 3", st.batches)
	}
}
