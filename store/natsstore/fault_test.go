package natsstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
)

// within fails t unless op returns ErrUnavailable within bound.
func within(t *testing.T, bound time.Duration, what string, op func(context.Context) error) {
	t.Helper()
	start := time.Now()
	err := op(context.Background())
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("%s with the store down: %v, want ErrUnavailable", what, err)
	}
	if took > bound {
		t.Fatalf("%s took %v to fail, bound %v", what, took, bound)
	}
}

// eventually retries op until it succeeds or 20 s pass.
func eventually(t *testing.T, what string, op func(context.Context) error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := op(ctx)
		cancel()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s still failing 20 s after the store came back: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outageOps are the operations checked during an outage.
func outageOps(s *Store) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"create orbit": func(ctx context.Context) error {
			_, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Down", Code: 11})
			return err
		},
		"get orbit": func(ctx context.Context) error { _, err := s.GetOrbit(ctx, "Down", 10); return err },
		"list orbits": func(ctx context.Context) error {
			_, err := s.ListOrbits(ctx, "")
			return err
		},
		"bindings": func(ctx context.Context) error { _, err := s.Bindings(ctx, "1001"); return err },
		"publish event": func(ctx context.Context) error {
			_, err := s.PublishEvent(ctx, store.Event{Type: store.EventParked})
			return err
		},
		"list records": func(ctx context.Context) error {
			_, err := s.ListRecords(ctx, time.Time{}, 10)
			return err
		},
	}
}

// TestServerDown stops the NATS server under a connected store: operations
// fail with ErrUnavailable within the bound, a subscription survives, and
// everything works again once the server is back on the same files.
func TestServerDown(t *testing.T) {
	n := startServer(t, "single")
	s := open(t, Options{URLs: []string{n.URL()}, NodeID: "a", OpTimeout: time.Second})
	ctx := ctxT(t)
	if _, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Down", Code: 10, CallID: "c10"}); err != nil {
		t.Fatal(err)
	}
	events, err := s.SubscribeEvents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	n.Stop()
	for what, op := range outageOps(s) {
		within(t, 1500*time.Millisecond, what, op)
	}
	_, err = s.SubscribeEvents(ctx, 0)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("subscribe with the store down: %v", err)
	}

	n.Start()
	took := eventually(t, "get orbit", func(ctx context.Context) error {
		o, err := s.GetOrbit(ctx, "Down", 10)
		if err == nil && o.CallID != "c10" {
			t.Fatalf("orbit after the outage: %+v", o)
		}
		return err
	})
	t.Logf("store usable again %v after the server restarted", took.Round(10*time.Millisecond))
	if _, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Down", Code: 11}); err != nil {
		t.Fatal(err)
	}
	p, err := s.PublishEvent(ctx, store.Event{Type: store.EventRetrieved, CallID: "after"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Seq != p.Seq || e.CallID != "after" {
			t.Fatalf("event after the outage: %+v, want %+v", e, p)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the subscription made before the outage got nothing after it")
	}
	// The heartbeat is back too.
	eventually(t, "heartbeat", func(ctx context.Context) error {
		ns, err := s.ListNodes(ctx)
		if err == nil && (len(ns) != 1 || ns[0].ID != "a") {
			return errors.New("node not listed")
		}
		return err
	})
}

// TestClusterQuorumLost stops two of three servers: the node left on the
// third gets ErrUnavailable within the bound (no quorum), and recovers
// when they return.
func TestClusterQuorumLost(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	servers := startCluster(t, 3)
	s := open(t, Options{URLs: []string{servers[0].URL()}, NodeID: "a", OpTimeout: time.Second})
	ctx := ctxT(t)
	if _, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Down", Code: 10, CallID: "c10"}); err != nil {
		t.Fatal(err)
	}
	servers[1].Stop()
	servers[2].Stop()
	// Writes need a quorum. A read may still be answered, from what the
	// server left has, until its stream leader steps down; it must not
	// hang either way.
	for _, what := range []string{"create orbit", "publish event"} {
		within(t, 2500*time.Millisecond, what, outageOps(s)[what])
	}
	start := time.Now()
	if _, err := s.GetOrbit(ctx, "Down", 10); err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("get orbit without quorum: %v", err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("get orbit without quorum took %v", took)
	}
	servers[1].Start()
	servers[2].Start()
	took := eventually(t, "create orbit", func(ctx context.Context) error {
		_, err := s.CreateOrbit(ctx, store.Orbit{Policy: "Down", Code: 11})
		if errors.Is(err, store.ErrExists) { // an earlier try got through after all
			return nil
		}
		return err
	})
	t.Logf("cluster usable again %v after quorum returned", took.Round(10*time.Millisecond))
	if o, err := s.GetOrbit(ctx, "Down", 10); err != nil || o.CallID != "c10" {
		t.Fatalf("orbit after the outage: %+v, %v", o, err)
	}
}

// TestUnreachableAtOpen: a store that cannot be reached at start is a
// clear error within the connect bound.
func TestUnreachableAtOpen(t *testing.T) {
	n := startServer(t, "gone")
	url := n.URL()
	n.Stop()
	start := time.Now()
	_, err := Open(context.Background(), Options{URLs: []string{url}, NodeID: "a", OpTimeout: time.Second, Logger: testLogger(t)})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), url) {
		t.Fatalf("open on a stopped server: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("open took %v to fail", took)
	}
	if _, err := Open(context.Background(), Options{NodeID: "a"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("open without data dir or URLs: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCorruptRecords writes bad JSON behind the store's back: every read
// skips it with a log line, and writes replace it.
func TestCorruptRecords(t *testing.T) {
	var logs syncBuffer
	s := open(t, Options{DataDir: t.TempDir(), NodeID: "a", Logger: zerolog.New(&logs), keepLogger: true})
	ctx := ctxT(t)
	junk := []byte("{not json")
	if _, err := s.CreateOrbit(ctx, store.Orbit{Policy: "P", Code: 11, CallID: "good"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.orbits.kv.Put(ctx, orbitKey("P", 10), junk); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListOrbits(ctx, "P"); err != nil || len(list) != 1 || list[0].CallID != "good" {
		t.Fatalf("list with a corrupt orbit: %+v, %v", list, err)
	}
	if _, err := s.GetOrbit(ctx, "P", 10); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("get a corrupt orbit: %v", err)
	}
	// Allocation skips the taken code; the corrupt record can be removed.
	if o, err := store.Allocate(ctx, s, store.Orbit{Policy: "P", CallID: "new"}, 10, 20); err != nil || o.Code != 12 {
		t.Fatalf("allocate past a corrupt orbit: %+v, %v", o, err)
	}
	if err := s.DeleteOrbit(ctx, store.Orbit{Policy: "P", Code: 10}); err != nil {
		t.Fatal(err)
	}

	if _, err := s.regs.kv.Put(ctx, userKey("1001"), junk); err != nil {
		t.Fatal(err)
	}
	if bs, err := s.Bindings(ctx, "1001"); err != nil || len(bs) != 0 {
		t.Fatalf("bindings of a corrupt registration: %+v, %v", bs, err)
	}
	if _, err := s.AllBindings(ctx); err != nil {
		t.Fatal(err)
	}
	b := store.Binding{User: "1001", Contact: "sip:1001@h", Expires: time.Now().Add(time.Hour)}
	if bs, err := s.UpdateBindings(ctx, "1001", func(live []store.Binding) ([]store.Binding, error) { return append(live, b), nil }); err != nil || len(bs) != 1 {
		t.Fatalf("register over a corrupt registration: %+v, %v", bs, err)
	}

	if _, err := s.dialogs.kv.Put(ctx, dialogKey("x", "y"), junk); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.ListDialogs(ctx, ""); err != nil || len(ds) != 0 {
		t.Fatalf("dialogs with a corrupt one: %+v, %v", ds, err)
	}

	events, err := s.SubscribeEvents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.Publish(ctx, EventSubjectPrefix+"parked", junk); err != nil {
		t.Fatal(err)
	}
	good, err := s.PublishEvent(ctx, store.Event{Type: store.EventParked, CallID: "good"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Seq != good.Seq {
			t.Fatalf("first event after a corrupt one: %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after a corrupt one")
	}

	if _, err := s.js.Publish(ctx, RecordSubject, junk); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRecord(ctx, store.CallRecord{CallID: "good"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.ListRecords(ctx, time.Time{}, 10); err != nil || len(rs) != 1 || rs[0].CallID != "good" {
		t.Fatalf("records with a corrupt one: %+v, %v", rs, err)
	}
	for _, want := range []string{"corrupt record skipped", "corrupt event skipped", "corrupt call record skipped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q log line in:\n%s", want, logs.String())
		}
	}
}
