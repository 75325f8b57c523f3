// Package storetest is the contract every store implementation passes: one
// table of tests run against the in-memory store and against NATS
// (embedded and clustered), so that they cannot drift apart.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// Harness opens stores on one shared backend.
type Harness struct {
	// Open returns the store of node id on the backend shared by every
	// store of the run; the harness closes it when t ends.
	Open func(t *testing.T, id string) store.Store
	// Kill stops the node of s as a crash would: no goodbye, no further
	// heartbeats.
	Kill func(t *testing.T, s store.Store)
}

// Run runs the contract suite.
func Run(t *testing.T, h Harness) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Registrations", testRegistrations},
		{"RegistrationExpiry", testRegistrationExpiry},
		{"RegistrationRace", testRegistrationRace},
		{"Orbits", testOrbits},
		{"OrbitWatch", testOrbitWatch},
		{"Allocate", testAllocate},
		{"AllocateRace", testAllocateRace},
		{"ClaimRace", testClaimRace},
		{"Dialogs", testDialogs},
		{"Nodes", testNodes},
		{"Events", testEvents},
		{"Records", testRecords},
		{"Log", testLog},
		{"Closed", testClosed},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
	}
}

var unique atomic.Int64

// uniq names the keys of one test, as the backend is shared by all of them.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, time.Now().UnixNano()%1e9, unique.Add(1))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must(f())(t) is f's value, failing t on f's error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func add(bs ...store.Binding) func([]store.Binding) ([]store.Binding, error) {
	return func(live []store.Binding) ([]store.Binding, error) {
		out := slices.Clone(live)
		for _, b := range bs {
			i := slices.IndexFunc(out, func(x store.Binding) bool { return x.Contact == b.Contact })
			if i >= 0 {
				out[i] = b
			} else {
				out = append(out, b)
			}
		}
		return out, nil
	}
}

func binding(user, contact string, expires time.Time) store.Binding {
	return store.Binding{
		User: user, Contact: contact, Source: "127.0.0.1:5062", Transport: "UDP",
		Expires: expires.Truncate(time.Millisecond), CallID: "reg-" + contact, CSeq: 7, UserAgent: "ua", Node: "n1",
	}
}

func testRegistrations(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	user := uniq("user.")
	if got := must(a.Bindings(ctx, user))(t); len(got) != 0 {
		t.Fatalf("bindings of a new user: %v", got)
	}
	exp := time.Now().Add(time.Hour)
	b1, b2 := binding(user, "sip:"+user+"@127.0.0.1:5062", exp), binding(user, "sip:"+user+"@127.0.0.2:5064;transport=tcp", exp.Add(time.Minute))
	got := must(a.UpdateBindings(ctx, user, add(b1, b2)))(t)
	if !slices.EqualFunc(got, []store.Binding{b1, b2}, sameBinding) {
		t.Fatalf("after update: %+v", got)
	}
	// Another node reads what the first wrote.
	if got := must(b.Bindings(ctx, user))(t); !slices.EqualFunc(got, []store.Binding{b1, b2}, sameBinding) {
		t.Fatalf("bindings from the other node: %+v", got)
	}
	// An error from fn writes nothing.
	boom := errors.New("boom")
	_, err := b.UpdateBindings(ctx, user, func([]store.Binding) ([]store.Binding, error) { return nil, boom })
	wantErr(t, err, boom, "update with a failing fn")
	if got := must(a.Bindings(ctx, user))(t); len(got) != 2 {
		t.Fatalf("a failed update changed the bindings: %+v", got)
	}
	other := user + "-z" // sorts after user
	must(b.UpdateBindings(ctx, other, add(binding(other, "sip:x@127.0.0.3", exp))))(t)
	all := must(a.AllBindings(ctx))(t)
	var mine []store.Binding
	for _, x := range all {
		if x.User == user || x.User == other {
			mine = append(mine, x)
		}
	}
	if len(mine) != 3 || mine[0].User != user || mine[1].User != user || mine[2].User != other {
		t.Fatalf("all bindings, ours: %+v", mine)
	}
	// Removing one, then all.
	got = must(a.UpdateBindings(ctx, user, func(live []store.Binding) ([]store.Binding, error) { return live[1:], nil }))(t)
	if len(got) != 1 || got[0].Contact != b2.Contact {
		t.Fatalf("after removing one: %+v", got)
	}
	got = must(b.UpdateBindings(ctx, user, func([]store.Binding) ([]store.Binding, error) { return nil, nil }))(t)
	if len(got) != 0 {
		t.Fatalf("after removing all: %+v", got)
	}
	if got := must(a.Bindings(ctx, user))(t); len(got) != 0 {
		t.Fatalf("removed user still has %+v", got)
	}
	// An expired binding in fn's result is dropped.
	got = must(a.UpdateBindings(ctx, user, add(binding(user, "sip:old@h", time.Now().Add(-time.Second)))))(t)
	if len(got) != 0 {
		t.Fatalf("expired binding written: %+v", got)
	}
}

func sameBinding(x, y store.Binding) bool {
	return x.User == y.User && x.Contact == y.Contact && x.Source == y.Source && x.Transport == y.Transport &&
		x.Expires.Equal(y.Expires) && x.CallID == y.CallID && x.CSeq == y.CSeq && x.UserAgent == y.UserAgent && x.Node == y.Node
}

func testRegistrationExpiry(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	user := uniq("exp.")
	now := time.Now()
	short, long := binding(user, "sip:short@h", now.Add(1500*time.Millisecond)), binding(user, "sip:long@h", now.Add(time.Hour))
	must(a.UpdateBindings(ctx, user, add(short, long)))(t)
	if got := must(b.Bindings(ctx, user))(t); len(got) != 2 {
		t.Fatalf("before expiry: %+v", got)
	}
	time.Sleep(time.Until(short.Expires) + 50*time.Millisecond)
	got := must(b.Bindings(ctx, user))(t)
	if len(got) != 1 || got[0].Contact != long.Contact {
		t.Fatalf("after the short binding's expiry: %+v", got)
	}
	// A user whose every binding expired is gone from AllBindings too.
	lone := uniq("exp.")
	must(a.UpdateBindings(ctx, lone, add(binding(lone, "sip:lone@h", time.Now().Add(1200*time.Millisecond)))))(t)
	time.Sleep(1300 * time.Millisecond)
	for _, x := range must(b.AllBindings(ctx))(t) {
		if x.User == lone {
			t.Fatalf("expired binding listed: %+v", x)
		}
	}
	if got := must(a.Bindings(ctx, lone))(t); len(got) != 0 {
		t.Fatalf("expired binding read: %+v", got)
	}
	// And it can register again.
	if got := must(a.UpdateBindings(ctx, lone, add(binding(lone, "sip:lone@h", time.Now().Add(time.Hour)))))(t); len(got) != 1 {
		t.Fatalf("registering again: %+v", got)
	}
}

func testRegistrationRace(t *testing.T, h Harness) {
	ctx := ctxT(t)
	nodes := []store.Store{h.Open(t, uniq("a")), h.Open(t, uniq("b"))}
	user := uniq("race.")
	const each = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for n, s := range nodes {
		wg.Go(func() {
			for i := range each {
				b := binding(user, fmt.Sprintf("sip:%d-%d@h", n, i), time.Now().Add(time.Hour))
				if _, err := s.UpdateBindings(ctx, user, add(b)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := must(nodes[0].Bindings(ctx, user))(t); len(got) != 2*each {
		t.Fatalf("%d bindings after %d concurrent registrations: a lost update", len(got), 2*each)
	}
}

func orbit(policy string, code int, owner string) store.Orbit {
	now := time.Now().Truncate(time.Millisecond)
	return store.Orbit{
		Policy: policy, Code: code, CallID: uniq("call-") + "@127.0.0.1",
		ParkedParty: store.Party{User: "1001", Display: "Alice Reception", URI: "sip:1001@contoso.com"},
		Parker:      store.Party{User: "1002", Display: "Bob", URI: "sip:1002@contoso.com"},
		ParkedAt:    now, RingbackAt: now.Add(300 * time.Second), TimeoutSeconds: 300,
		State: "parked", Owner: owner,
	}
}

func sameOrbit(x, y store.Orbit) bool {
	return x.Policy == y.Policy && x.Code == y.Code && x.CallID == y.CallID && x.ParkedParty == y.ParkedParty &&
		x.Parker == y.Parker && x.ParkedAt.Equal(y.ParkedAt) && x.RingbackAt.Equal(y.RingbackAt) &&
		x.TimeoutSeconds == y.TimeoutSeconds && x.State == y.State && x.Owner == y.Owner && x.Ringbacks == y.Ringbacks
}

func testOrbits(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	pol := uniq("Sales Policy ") // spaces and case must survive the key encoding
	o := orbit(pol, 10, a.NodeID())
	_, err := a.GetOrbit(ctx, pol, 10)
	wantErr(t, err, store.ErrNotFound, "get a free code")
	created := must(a.CreateOrbit(ctx, o))(t)
	if created.Revision == 0 || !sameOrbit(created, o) {
		t.Fatalf("created %+v", created)
	}
	_, err = b.CreateOrbit(ctx, orbit(pol, 10, b.NodeID()))
	wantErr(t, err, store.ErrExists, "create on a taken code")
	got := must(b.GetOrbit(ctx, store.FoldPolicy(pol), 10))(t) // identities ignore case
	if !sameOrbit(got, o) || got.Revision != created.Revision {
		t.Fatalf("got %+v, want %+v", got, created)
	}
	upd := got
	upd.State, upd.Ringbacks, upd.Owner = "ringing", 1, b.NodeID()
	upd = must(b.UpdateOrbit(ctx, upd))(t)
	if upd.Revision == got.Revision {
		t.Fatal("update kept the revision")
	}
	stale := got
	stale.State = "stale"
	_, err = a.UpdateOrbit(ctx, stale)
	wantErr(t, err, store.ErrConflict, "update at a stale revision")
	wantErr(t, a.DeleteOrbit(ctx, got), store.ErrConflict, "delete at a stale revision")
	if cur := must(a.GetOrbit(ctx, pol, 10))(t); !sameOrbit(cur, upd) {
		t.Fatalf("after the stale writes: %+v, want %+v", cur, upd)
	}
	must(a.CreateOrbit(ctx, orbit(pol, 12, a.NodeID())))(t)
	must(a.CreateOrbit(ctx, orbit(pol, 11, a.NodeID())))(t)
	other := uniq("Other")
	must(b.CreateOrbit(ctx, orbit(other, 10, b.NodeID())))(t)
	list := must(b.ListOrbits(ctx, pol))(t)
	if len(list) != 3 || list[0].Code != 10 || list[1].Code != 11 || list[2].Code != 12 || list[0].Revision != upd.Revision {
		t.Fatalf("list of %s: %+v", pol, list)
	}
	var ours []store.Orbit
	for _, x := range must(a.ListOrbits(ctx, ""))(t) {
		if x.Policy == pol || x.Policy == other {
			ours = append(ours, x)
		}
	}
	if len(ours) != 4 {
		t.Fatalf("list of every table, ours: %+v", ours)
	}
	// A claim deletes at the revision read; the code is free and can be reused.
	if err := a.DeleteOrbit(ctx, upd); err != nil {
		t.Fatal(err)
	}
	_, err = b.GetOrbit(ctx, pol, 10)
	wantErr(t, err, store.ErrNotFound, "get a claimed code")
	wantErr(t, b.DeleteOrbit(ctx, upd), store.ErrConflict, "claim a claimed code")
	_, err = b.UpdateOrbit(ctx, upd)
	wantErr(t, err, store.ErrConflict, "update a claimed code")
	again := must(b.CreateOrbit(ctx, orbit(pol, 10, b.NodeID())))(t)
	if again.Revision <= upd.Revision {
		t.Fatalf("revision went back: %d after %d", again.Revision, upd.Revision)
	}
	if err := a.DeleteOrbit(ctx, store.Orbit{Policy: pol, Code: 11}); err != nil { // revision 0: unconditional
		t.Fatal(err)
	}
	if n := len(must(a.ListOrbits(ctx, pol))(t)); n != 2 {
		t.Fatalf("%d orbits after an unconditional delete, want 2", n)
	}
	_, err = a.CreateOrbit(ctx, orbit("", 10, ""))
	wantErr(t, err, store.ErrInvalid, "create without a policy")
	_, err = a.GetOrbit(ctx, pol, 0)
	wantErr(t, err, store.ErrInvalid, "get code 0")
}

func testAllocate(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.Open(t, uniq("a"))
	pol := uniq("Alloc")
	next := func() int {
		t.Helper()
		return must(store.Allocate(ctx, s, orbit(pol, 0, s.NodeID()), 10, 14))(t).Code
	}
	for want := 10; want <= 12; want++ {
		if got := next(); got != want {
			t.Fatalf("allocated %d, want %d", got, want)
		}
	}
	// Freeing 10 does not make it next: allocation goes on after the last.
	o10 := must(s.GetOrbit(ctx, pol, 10))(t)
	if err := s.DeleteOrbit(ctx, o10); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{13, 14, 10} { // then wraps to the freed 10
		if got := next(); got != want {
			t.Fatalf("allocated %d, want %d", got, want)
		}
	}
	_, err := store.Allocate(ctx, s, orbit(pol, 0, s.NodeID()), 10, 14)
	wantErr(t, err, store.ErrFull, "allocate in a full range")
	if last := must(s.LastCode(ctx, pol))(t); last != 10 {
		t.Fatalf("last code %d, want 10", last)
	}
	// Codes outside the range (an edited policy) stay; a new range starts at its start.
	if got := must(store.Allocate(ctx, s, orbit(pol, 0, s.NodeID()), 20, 30))(t).Code; got != 20 {
		t.Fatalf("allocated %d in a new range, want 20", got)
	}
	o12 := must(s.GetOrbit(ctx, pol, 12))(t)
	if err := s.DeleteOrbit(ctx, o12); err != nil {
		t.Fatal(err)
	}
	// The last code, 20, is the end of the range: start again at 10,
	// skipping the taken 10 and 11.
	if got := must(store.Allocate(ctx, s, orbit(pol, 0, s.NodeID()), 10, 20))(t).Code; got != 12 {
		t.Fatalf("allocated %d, want 12", got)
	}
	_, err = store.Allocate(ctx, s, orbit(pol, 0, s.NodeID()), 10, 9)
	wantErr(t, err, store.ErrInvalid, "allocate in an empty range")
}

// testAllocateRace parks 200 calls from two nodes at once, two goroutines
// each, into one policy's range: no code may be handed out twice.
func testAllocateRace(t *testing.T, h Harness) {
	ctx := ctxT(t)
	nodes := []store.Store{h.Open(t, uniq("a")), h.Open(t, uniq("b"))}
	pol := uniq("Race")
	const perWorker, workers, start, end = 50, 2, 10, 299
	var (
		mu    sync.Mutex
		codes = make(map[int]string)
		wg    sync.WaitGroup
		errs  = make(chan error, len(nodes)*workers*perWorker) // never blocks a worker
	)
	for _, s := range nodes {
		for range workers {
			wg.Go(func() {
				for range perWorker {
					o, err := store.Allocate(ctx, s, orbit(pol, 0, s.NodeID()), start, end)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if prev, dup := codes[o.Code]; dup {
						errs <- fmt.Errorf("code %d allocated twice: to %s and to %s", o.Code, prev, o.CallID)
					}
					codes[o.Code] = o.CallID
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := len(nodes) * workers * perWorker
	if len(codes) != want {
		t.Fatalf("%d distinct codes, want %d", len(codes), want)
	}
	list := must(nodes[1].ListOrbits(ctx, pol))(t)
	if len(list) != want {
		t.Fatalf("%d orbits stored, want %d", len(list), want)
	}
	for _, o := range list {
		if codes[o.Code] != o.CallID {
			t.Fatalf("orbit %d holds %s, allocated to %s", o.Code, o.CallID, codes[o.Code])
		}
	}
}

// testClaimRace has eight retrievers on two nodes claim each orbit at once:
// exactly one wins each.
func testClaimRace(t *testing.T, h Harness) {
	ctx := ctxT(t)
	nodes := []store.Store{h.Open(t, uniq("a")), h.Open(t, uniq("b"))}
	pol := uniq("Claim")
	const rounds, perNode = 20, 4
	for code := 10; code < 10+rounds; code++ {
		must(nodes[0].CreateOrbit(ctx, orbit(pol, code, nodes[0].NodeID())))(t)
		var (
			wins  atomic.Int32
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make(chan error, 2*perNode)
		)
		for _, s := range nodes {
			for range perNode {
				wg.Go(func() {
					<-start
					o, err := s.GetOrbit(ctx, pol, code)
					if errors.Is(err, store.ErrNotFound) {
						return // claimed before we looked
					}
					if err != nil {
						errs <- err
						return
					}
					switch err := s.DeleteOrbit(ctx, o); {
					case err == nil:
						wins.Add(1)
					case !errors.Is(err, store.ErrConflict):
						errs <- err
					}
				})
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := wins.Load(); n != 1 {
			t.Fatalf("code %d: %d retrievers won", code, n)
		}
	}
}

func testDialogs(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	cid := uniq("a84b4c76e66710@pc33.atlanta.example.com/") // characters a key cannot hold
	d := store.Dialog{
		CallID: cid, LocalTag: "sw.1", RemoteTag: "1928301774",
		LocalURI: "sip:park@contoso.com", LocalName: "Parked 10", RemoteURI: "sip:1001@contoso.com", RemoteName: "Alice",
		LocalCSeq: 3, RemoteCSeq: 314159, RouteSet: []string{"<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"},
		RemoteTarget: "sip:1001@192.0.2.4:5062;transport=tcp", Dest: "127.0.0.1:5062", Transport: "TCP",
		LocalSDP: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", RemoteSDP: "v=0\r\no=- 2 2 IN IP4 127.0.0.2\r\n",
		RelayPort: 20002, Role: "a", Call: "c1", Parked: true, Owner: a.NodeID(),
	}
	_, err := b.GetDialog(ctx, cid, "sw.1")
	wantErr(t, err, store.ErrNotFound, "get a dialog never stored")
	put := must(a.PutDialog(ctx, d))(t)
	if put.Revision == 0 {
		t.Fatal("put returned no revision")
	}
	got := must(b.GetDialog(ctx, cid, "sw.1"))(t)
	d.Revision = put.Revision
	if !dialogEqual(got, d) {
		t.Fatalf("got %+v\nwant %+v", got, d)
	}
	// The owner moves it; a writer at the old revision loses.
	moved := got
	moved.Owner, moved.LocalCSeq = b.NodeID(), 4
	moved = must(b.PutDialog(ctx, moved))(t)
	_, err = a.PutDialog(ctx, got)
	wantErr(t, err, store.ErrConflict, "put at a stale revision")
	d2 := d
	d2.LocalTag, d2.Revision, d2.Owner = "sw.2", 0, a.NodeID()
	must(a.PutDialog(ctx, d2))(t)
	mine := func(ds []store.Dialog) []string {
		var out []string
		for _, x := range ds {
			if x.CallID == cid {
				out = append(out, x.LocalTag+"@"+x.Owner)
			}
		}
		return out
	}
	if got := mine(must(a.ListDialogs(ctx, ""))(t)); !slices.Equal(got, []string{"sw.1@" + b.NodeID(), "sw.2@" + a.NodeID()}) {
		t.Fatalf("every dialog, ours: %v", got)
	}
	if got := mine(must(a.ListDialogs(ctx, b.NodeID()))(t)); !slices.Equal(got, []string{"sw.1@" + b.NodeID()}) {
		t.Fatalf("dialogs of %s: %v", b.NodeID(), got)
	}
	if err := a.DeleteDialog(ctx, cid, "sw.1"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteDialog(ctx, cid, "sw.1"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	_, err = b.GetDialog(ctx, cid, "sw.1")
	wantErr(t, err, store.ErrNotFound, "get a deleted dialog")
	// A fresh put after a delete works, with or without a revision of 0.
	moved.Revision = 0
	must(b.PutDialog(ctx, moved))(t)
	_, err = a.PutDialog(ctx, store.Dialog{CallID: cid})
	wantErr(t, err, store.ErrInvalid, "put without a local tag")
}

func dialogEqual(x, y store.Dialog) bool {
	return reflect.DeepEqual(x, y)
}

func testNodes(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	has := func(ns []store.Node, id string) bool {
		return slices.ContainsFunc(ns, func(n store.Node) bool { return n.ID == id })
	}
	ns := must(a.ListNodes(ctx))(t)
	if !has(ns, a.NodeID()) || !has(ns, b.NodeID()) {
		t.Fatalf("nodes %+v lack %s or %s", ns, a.NodeID(), b.NodeID())
	}
	if !slices.IsSortedFunc(ns, func(x, y store.Node) int { return compare(x.ID, y.ID) }) {
		t.Fatalf("nodes not sorted: %+v", ns)
	}
	if err := a.SetNodeAddr(ctx, "127.0.0.9:5070"); err != nil {
		t.Fatal(err)
	}
	for _, n := range must(b.ListNodes(ctx))(t) {
		if n.ID == a.NodeID() && n.Addr != "127.0.0.9:5070" {
			t.Fatalf("node %s listed at %q after SetNodeAddr", n.ID, n.Addr)
		}
	}
	killed := time.Now()
	h.Kill(t, b)
	deadline := killed.Add(5 * time.Second)
	for {
		ns := must(a.ListNodes(ctx))(t)
		if !has(ns, b.NodeID()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed node %s still listed after 5 s: %+v", b.NodeID(), ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("killed node gone after %v", time.Since(killed).Round(10*time.Millisecond))
	if !has(must(a.ListNodes(ctx))(t), a.NodeID()) {
		t.Fatal("the live node dropped out")
	}
	c := h.Open(t, uniq("c"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	for has(must(a.ListNodes(ctx))(t), c.NodeID()) {
		if time.Since(closed) > 5*time.Second {
			t.Fatal("a closed node still listed after 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func compare(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func testEvents(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	call := uniq("ev-")
	subCtx, stop := context.WithCancel(ctx)
	live := must(b.SubscribeEvents(subCtx, 0))(t)
	_, err := a.PublishEvent(ctx, store.Event{Type: "parked.ish"})
	wantErr(t, err, store.ErrInvalid, "publish an unknown type")
	at := time.Now().Truncate(time.Millisecond)
	sent := []store.Event{
		{Type: store.EventParked, At: at, CallID: call, Policy: "Sales", Code: 10,
			Parker: store.Party{User: "1002", Display: "Bob"}, ParkedParty: store.Party{User: "1001", Display: "Alice"}},
		{Type: store.EventRetrieved, CallID: call, Policy: "Sales", Code: 10, Retriever: store.Party{User: "1003"}},
		{Type: store.EventCallEnded, CallID: call, Reason: "bye"},
	}
	for i, e := range sent {
		p := must(a.PublishEvent(ctx, e))(t)
		if p.Seq == 0 || p.At.IsZero() || p.Node != a.NodeID() {
			t.Fatalf("published %+v", p)
		}
		if i > 0 && p.Seq <= sent[i-1].Seq {
			t.Fatalf("sequence went back: %d after %d", p.Seq, sent[i-1].Seq)
		}
		sent[i] = p
	}
	recv := func(ch <-chan store.Event, n int) []store.Event {
		t.Helper()
		var out []store.Event
		timeout := time.After(10 * time.Second)
		for len(out) < n {
			select {
			case e, ok := <-ch:
				if !ok {
					t.Fatalf("subscription closed after %d events", len(out))
				}
				if e.CallID == call {
					out = append(out, e)
				}
			case <-timeout:
				t.Fatalf("%d of %d events in 10 s", len(out), n)
			}
		}
		return out
	}
	check := func(got []store.Event, what string) {
		t.Helper()
		for i := range sent {
			g, w := got[i], sent[i]
			if g.Seq != w.Seq || g.Type != w.Type || !g.At.Equal(w.At) || g.Node != w.Node || g.CallID != w.CallID ||
				g.Policy != w.Policy || g.Code != w.Code || g.Parker != w.Parker || g.ParkedParty != w.ParkedParty ||
				g.Retriever != w.Retriever || g.Reason != w.Reason {
				t.Fatalf("%s event %d: got %+v, want %+v", what, i, g, w)
			}
		}
	}
	check(recv(live, len(sent)), "live")
	// Replay from the first one, on either node.
	replay := must(a.SubscribeEvents(subCtx, sent[0].Seq))(t)
	check(recv(replay, len(sent)), "replayed")
	stop()
	for _, ch := range []<-chan store.Event{live, replay} {
		select {
		case <-drain(ch):
		case <-time.After(5 * time.Second):
			t.Fatal("subscription not closed 5 s after its context was cancelled")
		}
	}
}

// testLog writes events and records together through store.AppendLog (in
// one round on a store.Log): each entry gets its own error, and the events
// reach the log in the order given.
func testLog(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a := h.Open(t, uniq("a"))
	call := uniq("log-")
	since := time.Now().Add(-time.Millisecond)
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	live := must(a.SubscribeEvents(subCtx, 0))(t)
	var entries []store.LogEntry
	for i := range 150 {
		switch i {
		case 40:
			entries = append(entries, store.LogEntry{Event: store.Event{Type: "parked.ish", CallID: call}})
		case 70, 120:
			entries = append(entries, store.LogEntry{Record: &store.CallRecord{CallID: fmt.Sprintf("%s-%d", call, i), EndReason: "bye"}})
		default:
			entries = append(entries, store.LogEntry{Event: store.Event{Type: store.EventCallStarted, CallID: call, Code: i}})
		}
	}
	errs := store.AppendLog(ctx, a, entries)
	if len(errs) != len(entries) {
		t.Fatalf("%d errors for %d entries", len(errs), len(entries))
	}
	for i, err := range errs {
		if i == 40 {
			wantErr(t, err, store.ErrInvalid, "an unknown type in a batch")
		} else if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	recv := func(ch <-chan store.Event, n int) (codes []int, seqs []uint64) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for len(codes) < n {
			select {
			case e, ok := <-ch:
				if !ok {
					t.Fatalf("subscription closed after %d events", len(codes))
				}
				if e.CallID == call {
					if len(seqs) > 0 && e.Seq <= seqs[len(seqs)-1] {
						t.Fatalf("sequence went back: %d after %d", e.Seq, seqs[len(seqs)-1])
					}
					codes, seqs = append(codes, e.Code), append(seqs, e.Seq)
				}
			case <-timeout:
				t.Fatalf("%d of %d events in 10 s", len(codes), n)
			}
		}
		return codes, seqs
	}
	codes, seqs := recv(live, 147)
	want := 0
	for _, c := range codes {
		for want == 40 || want == 70 || want == 120 {
			want++
		}
		if c != want {
			t.Fatalf("events out of order: %v", codes)
		}
		want++
	}
	// A replay can start at any event of a batch, and gets it and what
	// followed it, nothing before.
	for _, at := range []int{0, 1, 97, 146} {
		replay := must(a.SubscribeEvents(subCtx, seqs[at]))(t)
		got, _ := recv(replay, 147-at)
		if !slices.Equal(got, codes[at:]) {
			t.Fatalf("replay from event %d (seq %d): codes %v, want %v", at, seqs[at], got, codes[at:])
		}
	}
	if rs := must(a.ListRecords(ctx, since, 1))(t); len(rs) != 1 {
		t.Fatalf("limit 1 listed %d records", len(rs))
	}
	n := 0
	for _, r := range must(a.ListRecords(ctx, since, store.MaxRecordLimit))(t) {
		if strings.HasPrefix(r.CallID, call+"-") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d of the 2 records listed", n)
	}
}

// drain returns a channel closed once ch is.
func drain(ch <-chan store.Event) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
		}
	}()
	return done
}

func testRecords(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a, b := h.Open(t, uniq("a")), h.Open(t, uniq("b"))
	since := time.Now().Add(-time.Millisecond)
	t0 := since.Truncate(time.Millisecond)
	var ids []string
	for i := range 3 {
		r := store.CallRecord{
			CallID: uniq("cdr-"), From: "1001", To: "1002", Started: t0, Answered: t0.Add(time.Second),
			Ended: t0.Add(time.Minute), EndReason: "bye",
			Legs: []store.LegRecord{{CallID: "l1", Role: "a", Party: store.Party{User: "1001"}, Started: t0, Ended: t0.Add(time.Minute)}},
		}
		if i == 1 {
			r.Park = &store.ParkRecord{Code: 10, Policy: "Sales", Parker: store.Party{User: "1002"}, ParkedAt: t0,
				RetrievedAt: t0.Add(30 * time.Second), Retriever: store.Party{User: "1003"}, Ringbacks: 1}
		}
		if err := a.AppendRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.CallID)
	}
	got := must(b.ListRecords(ctx, since, 0))(t)
	var mine []store.CallRecord
	for _, r := range got {
		if slices.Contains(ids, r.CallID) {
			mine = append(mine, r)
		}
	}
	if len(mine) != 3 {
		t.Fatalf("%d of our 3 records listed since %v", len(mine), since)
	}
	for i, r := range mine {
		if r.CallID != ids[i] || r.Node != a.NodeID() || !r.Answered.Equal(t0.Add(time.Second)) || len(r.Legs) != 1 || r.Legs[0].Party.User != "1001" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if p := mine[1].Park; p == nil || p.Code != 10 || p.Retriever.User != "1003" || !p.RetrievedAt.Equal(t0.Add(30*time.Second)) || p.Ringbacks != 1 {
		t.Fatalf("park of record 1: %+v", mine[1].Park)
	}
	if mine[0].Park != nil {
		t.Fatalf("record 0 has a park: %+v", mine[0].Park)
	}
	// Records appended meanwhile by other tests may interleave: the limit
	// counts from the oldest, which are ours.
	if lim := must(b.ListRecords(ctx, since, 2))(t); len(lim) != 2 || lim[0].CallID != ids[0] {
		t.Fatalf("limit 2: %+v", lim)
	}
	if later := must(b.ListRecords(ctx, time.Now().Add(time.Hour), 10))(t); len(later) != 0 {
		t.Fatalf("records from the future: %+v", later)
	}
}

func testClosed(t *testing.T, h Harness) {
	s := h.Open(t, uniq("a"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	_, err := s.GetOrbit(ctx, "p", 10)
	wantErr(t, err, store.ErrClosed, "get after close")
	_, err = s.Bindings(ctx, "u")
	wantErr(t, err, store.ErrClosed, "bindings after close")
	_, err = s.PublishEvent(ctx, store.Event{Type: store.EventParked})
	wantErr(t, err, store.ErrClosed, "publish after close")
	_, err = s.SubscribeEvents(ctx, 0)
	wantErr(t, err, store.ErrClosed, "subscribe after close")
	_, err = s.WatchOrbits(ctx)
	wantErr(t, err, store.ErrClosed, "watch after close")
}
