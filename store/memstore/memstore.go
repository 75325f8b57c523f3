// Package memstore implements the store interfaces in memory, for unit
// tests of the packages that use the store. A Backend plays the shared
// state of a cluster; each Store opened on it is one node. It passes the
// same contract suite (storetest) as the NATS implementation.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// MaxEvents is how many events a Backend keeps for replay.
const MaxEvents = 10000

// Options configure a Backend; zero values take defaults.
type Options struct {
	CDRDays int              // call record retention; store.DefaultCDRDays when 0
	Now     func() time.Time // clock of expiries and timestamps; time.Now when nil
}

// Backend is the state every Store opened on it shares.
type Backend struct {
	now     func() time.Time
	cdrDays int

	mu      sync.Mutex
	rev     uint64 // last revision handed out, across every record
	regs    map[string]regEntry
	orbits  map[string]map[int]store.Orbit // by folded policy, then code
	cursors map[string]int
	dialogs map[dialogKey]store.Dialog
	nodes   map[string]store.Node // live nodes
	events  []store.Event         // the last MaxEvents
	seq     uint64
	notify  chan struct{} // closed and replaced on every event
	records []record
	watch   orbitLog
}

type regEntry struct {
	bindings []store.Binding
	rev      uint64
}

type dialogKey struct{ callID, tag string }

type record struct {
	at time.Time
	r  store.CallRecord
}

// New returns an empty backend.
func New(o Options) *Backend {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CDRDays <= 0 {
		o.CDRDays = store.DefaultCDRDays
	}
	return &Backend{
		now: o.Now, cdrDays: o.CDRDays,
		regs: make(map[string]regEntry), orbits: make(map[string]map[int]store.Orbit),
		cursors: make(map[string]int), dialogs: make(map[dialogKey]store.Dialog),
		nodes: make(map[string]store.Node), notify: make(chan struct{}),
		watch: orbitLog{wake: make(chan struct{})},
	}
}

// Open returns the store of node id, reachable at addr, alive until Close
// or Kill.
func (b *Backend) Open(id, addr string) *Store {
	b.mu.Lock()
	now := b.now()
	b.nodes[id] = store.Node{ID: id, Addr: addr, Started: now, Seen: now}
	b.mu.Unlock()
	return &Store{b: b, id: id, done: make(chan struct{})}
}

// Store is one node's view of a Backend.
type Store struct {
	b    *Backend
	id   string
	wg   sync.WaitGroup // subscribers
	once sync.Once
	done chan struct{} // closed by Close
}

var _ store.Store = (*Store)(nil)

// Close ends the node's subscriptions and takes it out of ListNodes.
func (s *Store) Close() error {
	s.Kill()
	s.once.Do(func() { close(s.done) })
	s.wg.Wait()
	return nil
}

// Kill makes the node drop out of ListNodes as if it had crashed, leaving
// its store usable (tests of takeover).
func (s *Store) Kill() {
	s.b.mu.Lock()
	delete(s.b.nodes, s.id)
	s.b.mu.Unlock()
}

// lock takes the backend's lock unless the store is closed.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.done:
		return store.ErrClosed
	default:
	}
	s.b.mu.Lock()
	return nil
}

func (b *Backend) next() uint64 { b.rev++; return b.rev }

// Bindings implements store.Registrations.
func (s *Store) Bindings(ctx context.Context, user string) ([]store.Binding, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	return store.LiveBindings(slices.Clone(s.b.regs[user].bindings), s.b.now()), nil
}

// UpdateBindings implements store.Registrations.
func (s *Store) UpdateBindings(ctx context.Context, user string, fn func([]store.Binding) ([]store.Binding, error)) ([]store.Binding, error) {
	if user == "" {
		return nil, fmt.Errorf("update bindings: %w: empty user", store.ErrInvalid)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	now := s.b.now()
	live := store.LiveBindings(slices.Clone(s.b.regs[user].bindings), now)
	out, err := fn(live)
	if err != nil {
		return nil, err
	}
	out = store.LiveBindings(slices.Clone(out), now)
	if len(out) == 0 {
		delete(s.b.regs, user)
		return nil, nil
	}
	s.b.regs[user] = regEntry{bindings: out, rev: s.b.next()}
	return slices.Clone(out), nil
}

// AllBindings implements store.Registrations.
func (s *Store) AllBindings(ctx context.Context) ([]store.Binding, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	now := s.b.now()
	users := make([]string, 0, len(s.b.regs))
	for u := range s.b.regs {
		users = append(users, u)
	}
	slices.Sort(users)
	var out []store.Binding
	for _, u := range users {
		out = append(out, store.LiveBindings(slices.Clone(s.b.regs[u].bindings), now)...)
	}
	return out, nil
}

// CreateOrbit implements store.Orbits.
func (s *Store) CreateOrbit(ctx context.Context, o store.Orbit) (store.Orbit, error) {
	if err := store.CheckOrbitKey(o.Policy, o.Code); err != nil {
		return store.Orbit{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Orbit{}, err
	}
	defer s.b.mu.Unlock()
	key := store.FoldPolicy(o.Policy)
	t := s.b.orbits[key]
	if t == nil {
		t = make(map[int]store.Orbit)
		s.b.orbits[key] = t
	}
	if _, ok := t[o.Code]; ok {
		return store.Orbit{}, fmt.Errorf("create orbit %s/%d: %w", o.Policy, o.Code, store.ErrExists)
	}
	o.Revision = s.b.next()
	t[o.Code] = o
	s.b.watch.put(o)
	return o, nil
}

// GetOrbit implements store.Orbits.
func (s *Store) GetOrbit(ctx context.Context, policy string, code int) (store.Orbit, error) {
	if err := store.CheckOrbitKey(policy, code); err != nil {
		return store.Orbit{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Orbit{}, err
	}
	defer s.b.mu.Unlock()
	o, ok := s.b.orbits[store.FoldPolicy(policy)][code]
	if !ok {
		return store.Orbit{}, fmt.Errorf("get orbit %s/%d: %w", policy, code, store.ErrNotFound)
	}
	return cloneOrbit(o), nil
}

// UpdateOrbit implements store.Orbits.
func (s *Store) UpdateOrbit(ctx context.Context, o store.Orbit) (store.Orbit, error) {
	if err := store.CheckOrbitKey(o.Policy, o.Code); err != nil {
		return store.Orbit{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Orbit{}, err
	}
	defer s.b.mu.Unlock()
	t := s.b.orbits[store.FoldPolicy(o.Policy)]
	cur, ok := t[o.Code]
	if !ok || cur.Revision != o.Revision {
		return store.Orbit{}, fmt.Errorf("update orbit %s/%d at revision %d: %w", o.Policy, o.Code, o.Revision, store.ErrConflict)
	}
	o.Revision = s.b.next()
	t[o.Code] = cloneOrbit(o)
	s.b.watch.put(o)
	return o, nil
}

// DeleteOrbit implements store.Orbits.
func (s *Store) DeleteOrbit(ctx context.Context, o store.Orbit) error {
	if err := store.CheckOrbitKey(o.Policy, o.Code); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	t := s.b.orbits[store.FoldPolicy(o.Policy)]
	cur, ok := t[o.Code]
	if o.Revision != 0 && (!ok || cur.Revision != o.Revision) {
		return fmt.Errorf("delete orbit %s/%d at revision %d: %w", o.Policy, o.Code, o.Revision, store.ErrConflict)
	}
	if ok {
		delete(t, o.Code)
		s.b.watch.gone(o.Policy, o.Code)
	}
	s.b.next()
	return nil
}

// ListOrbits implements store.Orbits.
func (s *Store) ListOrbits(ctx context.Context, policy string) ([]store.Orbit, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	var out []store.Orbit
	for key, t := range s.b.orbits {
		if policy != "" && key != store.FoldPolicy(policy) {
			continue
		}
		for _, o := range t {
			out = append(out, cloneOrbit(o))
		}
	}
	store.SortOrbits(out)
	return out, nil
}

// LastCode implements store.Orbits.
func (s *Store) LastCode(ctx context.Context, policy string) (int, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.b.mu.Unlock()
	return s.b.cursors[store.FoldPolicy(policy)], nil
}

// SetLastCode implements store.Orbits.
func (s *Store) SetLastCode(ctx context.Context, policy string, code int) error {
	if err := store.CheckOrbitKey(policy, code); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	s.b.cursors[store.FoldPolicy(policy)] = code
	return nil
}

func cloneOrbit(o store.Orbit) store.Orbit { return o } // no reference fields

// PutDialog implements store.Dialogs.
func (s *Store) PutDialog(ctx context.Context, d store.Dialog) (store.Dialog, error) {
	if err := store.CheckDialogKey(d.CallID, d.LocalTag); err != nil {
		return store.Dialog{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Dialog{}, err
	}
	defer s.b.mu.Unlock()
	k := dialogKey{d.CallID, d.LocalTag}
	if d.Revision != 0 {
		if cur, ok := s.b.dialogs[k]; !ok || cur.Revision != d.Revision {
			return store.Dialog{}, fmt.Errorf("put dialog %s at revision %d: %w", d.CallID, d.Revision, store.ErrConflict)
		}
	}
	d.RouteSet = slices.Clone(d.RouteSet)
	d.Revision = s.b.next()
	s.b.dialogs[k] = d
	d.RouteSet = slices.Clone(d.RouteSet)
	return d, nil
}

// GetDialog implements store.Dialogs.
func (s *Store) GetDialog(ctx context.Context, callID, localTag string) (store.Dialog, error) {
	if err := store.CheckDialogKey(callID, localTag); err != nil {
		return store.Dialog{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Dialog{}, err
	}
	defer s.b.mu.Unlock()
	d, ok := s.b.dialogs[dialogKey{callID, localTag}]
	if !ok {
		return store.Dialog{}, fmt.Errorf("get dialog %s: %w", callID, store.ErrNotFound)
	}
	d.RouteSet = slices.Clone(d.RouteSet)
	return d, nil
}

// DeleteDialog implements store.Dialogs.
func (s *Store) DeleteDialog(ctx context.Context, callID, localTag string) error {
	if err := store.CheckDialogKey(callID, localTag); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	delete(s.b.dialogs, dialogKey{callID, localTag})
	return nil
}

// ListDialogs implements store.Dialogs.
func (s *Store) ListDialogs(ctx context.Context, node string) ([]store.Dialog, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	var out []store.Dialog
	for _, d := range s.b.dialogs {
		if node == "" || d.Owner == node {
			d.RouteSet = slices.Clone(d.RouteSet)
			out = append(out, d)
		}
	}
	store.SortDialogs(out)
	return out, nil
}

// NodeID implements store.Nodes.
func (s *Store) NodeID() string { return s.id }

// SetNodeAddr implements store.Nodes; a killed node stays gone.
func (s *Store) SetNodeAddr(ctx context.Context, addr string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	if n, ok := s.b.nodes[s.id]; ok {
		n.Addr = addr
		s.b.nodes[s.id] = n
	}
	return nil
}

// ListNodes implements store.Nodes: a node is alive from Open to Close or
// Kill, and its Seen is now.
func (s *Store) ListNodes(ctx context.Context) ([]store.Node, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	now := s.b.now()
	out := make([]store.Node, 0, len(s.b.nodes))
	for _, n := range s.b.nodes {
		n.Seen = now
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b store.Node) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// PublishEvent implements store.Events.
func (s *Store) PublishEvent(ctx context.Context, e store.Event) (store.Event, error) {
	if !e.Type.Valid() {
		return store.Event{}, fmt.Errorf("publish event %q: %w: unknown type", e.Type, store.ErrInvalid)
	}
	if err := s.lock(ctx); err != nil {
		return store.Event{}, err
	}
	defer s.b.mu.Unlock()
	if e.At.IsZero() {
		e.At = s.b.now()
	}
	e.Node = s.id
	s.b.seq++
	e.Seq = s.b.seq
	s.b.events = append(s.b.events, e)
	if n := len(s.b.events) - MaxEvents; n > 0 {
		s.b.events = slices.Delete(s.b.events, 0, n)
	}
	close(s.b.notify)
	s.b.notify = make(chan struct{})
	return e, nil
}

// SubscribeEvents implements store.Events.
func (s *Store) SubscribeEvents(ctx context.Context, from uint64) (<-chan store.Event, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	next := from
	if from == 0 {
		next = s.b.seq + 1
	}
	s.b.mu.Unlock()
	ch := make(chan store.Event, 64)
	follow(ctx, s, ch, func() ([]store.Event, <-chan struct{}, bool) {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		var batch []store.Event
		i, _ := slices.BinarySearchFunc(s.b.events, next, func(e store.Event, seq uint64) int { return cmp.Compare(e.Seq, seq) })
		if i < len(s.b.events) {
			batch = slices.Clone(s.b.events[i:])
			next = batch[len(batch)-1].Seq + 1
		}
		return batch, s.b.notify, true
	})
	return ch, nil
}

// follow runs a goroutine, owned by the store, that sends ch every batch
// next returns and, after an empty one, waits on the wake channel next
// returned with it. It closes ch when ctx or the store ends, or when next
// reports false (the receiver fell too far behind and starts again).
func follow[T any](ctx context.Context, s *Store, ch chan<- T, next func() (batch []T, wake <-chan struct{}, ok bool)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		for {
			batch, wake, ok := next()
			if !ok {
				return
			}
			for _, v := range batch {
				select {
				case ch <- v:
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}()
}

// AppendRecord implements store.Records.
func (s *Store) AppendRecord(ctx context.Context, r store.CallRecord) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	now := s.b.now()
	if r.Ended.IsZero() {
		r.Ended = now
	}
	r.Node = s.id
	s.b.expireRecords(now)
	s.b.records = append(s.b.records, record{at: now, r: cloneRecord(r)})
	return nil
}

// ListRecords implements store.Records.
func (s *Store) ListRecords(ctx context.Context, since time.Time, limit int) ([]store.CallRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	s.b.expireRecords(s.b.now())
	limit = store.RecordLimit(limit)
	var out []store.CallRecord
	for _, r := range s.b.records {
		if len(out) == limit {
			break
		}
		if !r.at.Before(since) {
			out = append(out, cloneRecord(r.r))
		}
	}
	return out, nil
}

// expireRecords drops records past retention; it needs b.mu.
func (b *Backend) expireRecords(now time.Time) {
	cut := now.Add(-time.Duration(b.cdrDays) * 24 * time.Hour)
	i := 0
	for i < len(b.records) && b.records[i].at.Before(cut) {
		i++
	}
	b.records = slices.Delete(b.records, 0, i)
}

func cloneRecord(r store.CallRecord) store.CallRecord {
	r.Legs = slices.Clone(r.Legs)
	if r.Park != nil {
		p := *r.Park
		r.Park = &p
	}
	return r
}
