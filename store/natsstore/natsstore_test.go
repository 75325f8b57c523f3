package natsstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestContractEmbedded runs the contract on one embedded server: the first
// node owns it, the others connect to it in process.
func TestContractEmbedded(t *testing.T) {
	first := open(t, Options{DataDir: t.TempDir(), NodeID: "embedded"})
	if !first.Embedded() || first.Replicas() != 1 {
		t.Fatalf("embedded %v, replicas %d", first.Embedded(), first.Replicas())
	}
	if a := first.srv.Addr(); a != nil {
		t.Fatalf("the embedded server listens on %v", a)
	}
	storetest.Run(t, harness(func(t *testing.T, id string) *Store {
		return open(t, Options{inProcess: first.srv, NodeID: id})
	}))
}

// TestContractCluster runs the contract on a 3-server cluster, each node
// of a test on its own server: allocations and claims race across servers.
func TestContractCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	servers := startCluster(t, 3)
	n := 0
	storetest.Run(t, harness(func(t *testing.T, id string) *Store {
		n++
		// The node's own server first; the rest for reconnects.
		u := urls(servers)
		i := n % len(u)
		s := open(t, Options{URLs: append(u[i:], u[:i]...), NodeID: id})
		if s.Replicas() != 3 {
			t.Fatalf("replicas %d on a 3-server cluster", s.Replicas())
		}
		return s
	}))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRestart closes the embedded store and opens it again on the same
// files: registrations, orbits and dialogs survive; expired bindings do not.
func TestRestart(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := open(t, Options{DataDir: dir, NodeID: "a"})
	now := time.Now()
	keep := store.Binding{User: "1001", Contact: "sip:1001@127.0.0.1:5062", Expires: now.Add(time.Hour).Truncate(time.Millisecond), Node: "a"}
	lapse := store.Binding{User: "1002", Contact: "sip:1002@127.0.0.1:5064", Expires: now.Add(1200 * time.Millisecond), Node: "a"}
	for _, b := range []store.Binding{keep, lapse} {
		if _, err := s.UpdateBindings(ctx, b.User, func([]store.Binding) ([]store.Binding, error) { return []store.Binding{b}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	o, err := store.Allocate(ctx, s, store.Orbit{Policy: "Sales", CallID: "c1", RingbackAt: now.Add(5 * time.Minute).Truncate(time.Millisecond), State: "parked", Owner: "a"}, 10, 99)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.PutDialog(ctx, store.Dialog{CallID: "c1@h", LocalTag: "t1", RemoteTag: "r1", LocalCSeq: 5, RouteSet: []string{"<sip:p;lr>"}, RelayPort: 20010, Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(lapse.Expires) + 100*time.Millisecond)

	s = open(t, Options{DataDir: dir, NodeID: "a"})
	if got, err := s.Bindings(ctx, keep.User); err != nil || len(got) != 1 || got[0].Contact != keep.Contact || !got[0].Expires.Equal(keep.Expires) {
		t.Fatalf("kept binding after restart: %+v, %v", got, err)
	}
	if got, err := s.Bindings(ctx, lapse.User); err != nil || len(got) != 0 {
		t.Fatalf("expired binding after restart: %+v, %v", got, err)
	}
	all, err := s.AllBindings(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("all bindings after restart: %+v, %v", all, err)
	}
	got, err := s.GetOrbit(ctx, "sales", o.Code)
	if err != nil || got.Revision != o.Revision || !got.RingbackAt.Equal(o.RingbackAt) || got.CallID != "c1" {
		t.Fatalf("orbit after restart: %+v, %v; want %+v", got, err, o)
	}
	if last, err := s.LastCode(ctx, "Sales"); err != nil || last != o.Code {
		t.Fatalf("last code after restart: %d, %v", last, err)
	}
	if next, err := store.Allocate(ctx, s, store.Orbit{Policy: "Sales", CallID: "c2"}, 10, 99); err != nil || next.Code != o.Code+1 {
		t.Fatalf("next allocation after restart: %+v, %v", next, err)
	}
	gd, err := s.GetDialog(ctx, "c1@h", "t1")
	if err != nil || gd.Revision != d.Revision || gd.RelayPort != 20010 || gd.LocalCSeq != 5 || len(gd.RouteSet) != 1 {
		t.Fatalf("dialog after restart: %+v, %v", gd, err)
	}
	// The registration's key itself goes from the bucket, not only from
	// reads: its TTL is the binding's, rounded up to the next second.
	deadline := lapse.Expires.Add(3 * time.Second)
	for {
		_, err := s.regs.get(ctx, userKey(lapse.User))
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired registration key still stored 3 s after its expiry: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("registration key gone %v after the binding's expiry", time.Since(lapse.Expires).Round(10*time.Millisecond))
}

// twoNodes starts a 3-server cluster and opens node a on its first server
// and node b on its second; it skips in -short.
func twoNodes(t *testing.T) (a, b *Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster")
	}
	u := urls(startCluster(t, 3))
	return open(t, Options{URLs: u, NodeID: "a"}), open(t, Options{URLs: append(u[1:], u[0]), NodeID: "b"})
}

// TestClusterListSeesWrites lists, on a node of another server, each
// orbit the moment its create is acknowledged, and each claim the moment
// it is made: a list read from a lagging replica would miss some of them,
// and a node taking over a dead one would leave its parked calls behind.
func TestClusterListSeesWrites(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxT(t)
	const pol, rounds = "Sales", 150
	now := time.Now().Truncate(time.Millisecond)
	has := func(list []store.Orbit, code int) bool {
		for _, o := range list {
			if o.Code == code {
				return true
			}
		}
		return false
	}
	for code := 10; code < 10+rounds; code++ {
		o, err := a.CreateOrbit(ctx, store.Orbit{Policy: pol, Code: code, CallID: fmt.Sprintf("c%d@127.0.0.1", code),
			ParkedAt: now, RingbackAt: now.Add(time.Minute), TimeoutSeconds: 60, State: "parked", Owner: "a"})
		if err != nil {
			t.Fatal(err)
		}
		list, err := b.ListOrbits(ctx, pol)
		if err != nil {
			t.Fatal(err)
		}
		if !has(list, code) || len(list) != 1 {
			t.Fatalf("round %d: node b lists %d orbits without the one node a has just made", code-10, len(list))
		}
		if err := b.DeleteOrbit(ctx, o); err != nil {
			t.Fatal(err)
		}
		if list, err = a.ListOrbits(ctx, pol); err != nil || len(list) != 0 {
			t.Fatalf("round %d: node a lists %d orbits after node b's claim (%v)", code-10, len(list), err)
		}
	}
}

// TestClusterRecordsSeeWrites lists, on a node of another server, the
// call records since each append the moment it is acknowledged: the
// listing's consumer may sit on a replica that has not applied it yet.
func TestClusterRecordsSeeWrites(t *testing.T) {
	a, b := twoNodes(t)
	ctx := ctxT(t)
	const rounds = 150
	for i := range rounds {
		since := time.Now()
		id := fmt.Sprintf("r%d@127.0.0.1", i)
		if err := a.AppendRecord(ctx, store.CallRecord{CallID: id, From: "1001", To: "1002", Started: since, Ended: since, EndReason: "bye"}); err != nil {
			t.Fatal(err)
		}
		list, err := b.ListRecords(ctx, since.Add(-time.Millisecond), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].CallID != id {
			t.Fatalf("round %d: node b lists %d records, not the one node a has just appended", i, len(list))
		}
	}
	// Since the last, none; since the start, every one, in order.
	if list, err := b.ListRecords(ctx, time.Now().Add(time.Second), 0); err != nil || len(list) != 0 {
		t.Fatalf("records since a second ahead: %d (%v)", len(list), err)
	}
	list, err := b.ListRecords(ctx, time.Time{}, store.MaxRecordLimit)
	if err != nil || len(list) != rounds {
		t.Fatalf("all records: %d of %d (%v)", len(list), rounds, err)
	}
	for i, r := range list {
		if r.CallID != fmt.Sprintf("r%d@127.0.0.1", i) {
			t.Fatalf("record %d is %s", i, r.CallID)
		}
	}
}

// TestEventsBoundedOnDisk: the events stream takes EventsBytes as its
// bound on disk, DefaultEventsBytes when it is not set, and stays within it.
func TestEventsBoundedOnDisk(t *testing.T) {
	const bound, n = 64 << 10, 1200
	ctx := ctxT(t)
	s := open(t, Options{DataDir: t.TempDir(), NodeID: "a"})
	info, err := s.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != DefaultEventsBytes {
		t.Fatalf("default events bound %d, want %d", info.Config.MaxBytes, DefaultEventsBytes)
	}
	_ = s.Close()

	s = open(t, Options{DataDir: t.TempDir(), NodeID: "a", EventsBytes: bound})
	entries := make([]store.LogEntry, n)
	for i := range entries {
		entries[i].Event = store.Event{Type: store.EventCallAnswered, CallID: fmt.Sprintf("e%04d", i), At: time.Now()}
	}
	for range 4 { // 4,800 events, several times the bound
		for i, err := range s.AppendLog(ctx, entries) {
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
	}
	if info, err = s.events.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != bound || info.State.Bytes > bound || info.State.Msgs == 0 {
		t.Fatalf("events stream: max %d, %d bytes in %d messages; want at most %d bytes", info.Config.MaxBytes, info.State.Bytes, info.State.Msgs, bound)
	}
}

// TestRecordsBoundedOnDisk: past CDRBytes the oldest call records are
// dropped, the newest kept and listed, and the stream stays within it. The
// same store reopened with a new bound applies it to the existing stream.
func TestRecordsBoundedOnDisk(t *testing.T) {
	const bound, n = 64 << 10, 600
	dir := t.TempDir()
	s := open(t, Options{DataDir: dir, NodeID: "a", CDRBytes: bound})
	ctx := ctxT(t)
	entries := make([]store.LogEntry, n)
	for i := range entries {
		entries[i].Record = &store.CallRecord{CallID: fmt.Sprintf("r%04d", i), From: "sip:1001@contoso.com", To: "sip:1002@contoso.com", EndReason: "bye"}
	}
	for i, err := range s.AppendLog(ctx, entries) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	info, err := s.records.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != bound || info.State.Bytes > bound || info.State.Msgs == 0 || info.State.Msgs >= n {
		t.Fatalf("records stream: max %d, %d bytes in %d messages; want at most %d bytes and fewer than %d", info.Config.MaxBytes, info.State.Bytes, info.State.Msgs, bound, n)
	}
	rs, err := s.ListRecords(ctx, time.Time{}, store.MaxRecordLimit)
	if err != nil {
		t.Fatal(err)
	}
	// A message holds a batch's records: they are dropped a message at a
	// time, and those listed are the newest, without a gap.
	if len(rs) == 0 || len(rs) >= n || rs[0].CallID == "r0000" || rs[len(rs)-1].CallID != fmt.Sprintf("r%04d", n-1) {
		t.Fatalf("listed %d records (%d messages stored), want the newest", len(rs), info.State.Msgs)
	}
	for i, r := range rs {
		if want := fmt.Sprintf("r%04d", n-len(rs)+i); r.CallID != want {
			t.Fatalf("record %d listed is %s, want %s", i, r.CallID, want)
		}
	}
	_ = s.Close()

	s = open(t, Options{DataDir: dir, NodeID: "a", CDRBytes: bound / 4})
	if info, err = s.records.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != bound/4 || info.State.Bytes > bound/4 {
		t.Fatalf("reopened with a smaller bound: max %d, %d bytes", info.Config.MaxBytes, info.State.Bytes)
	}
}
