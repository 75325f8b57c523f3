package park

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkswitch/parkswitch/policy"
)

// Errors of Park and Retrieve; the SIP status each maps to is in brackets.
var (
	ErrNotAllowed = errors.New("park: call park is not allowed by the policy")        // [403]
	ErrRangeFull  = errors.New("park: every code of the pickup range is occupied")    // [503]
	ErrNoOrbit    = errors.New("park: no parked call with that code for this policy") // [404]
	ErrParked     = errors.New("park: the call is already parked")
	ErrOccupied   = errors.New("park: that code is occupied")                 // directed park [486 in the NOTIFY]
	ErrOutOfRange = errors.New("park: that code is outside the pickup range") // directed park [403]
	ErrClosed     = errors.New("park: the lot is closed")
	// ErrUnavailable: the shared orbit table (the state store) cannot be
	// reached, so no code can be allocated without risking a duplicate. [503]
	ErrUnavailable = errors.New("park: the shared orbit table is unavailable")
)

// Defaults of Config, used where a field is zero or out of range.
const (
	DefaultRingback     = 30 * time.Second
	DefaultMaxRingbacks = 3
)

// Config is the lot's share of the park section of the main configuration.
type Config struct {
	Ringback     time.Duration // how long each ringback rings the parker, then the fallback
	MaxRingbacks int           // unanswered ringback cycles before the parked party is disconnected
	Fallback     string        // user rung when the parker does not answer; "" = none
}

func (c Config) normalized() Config {
	if c.Ringback <= 0 {
		c.Ringback = DefaultRingback
	}
	if c.MaxRingbacks < 1 {
		c.MaxRingbacks = DefaultMaxRingbacks
	}
	return c
}

// Lot holds one orbit table per policy. It is safe for concurrent use.
type Lot struct {
	clock   Clock
	ringer  Ringer
	onEvent func(Event)

	base    context.Context // parent of every ringback; cancelled by Close
	stopAll context.CancelFunc
	wg      sync.WaitGroup // pending timers and ringback goroutines
	drained chan struct{}  // closed once wg is done after Close

	mu         sync.Mutex
	cfg        Config
	tables     map[string]*table // by folded policy identity
	spellings  map[string]*table // by identity as given, sparing a fold per call
	calls      map[string]*Orbit // by call ID, for Hangup
	pending    map[string]bool   // call IDs whose park is allocating a code in the shared table
	closed     bool
	events     []Event // queued for delivery, see unlock
	spare      []Event
	delivering bool

	shared *sharing // nil: the lot's tables are its own
}

// table is the orbit table of one policy.
type table struct {
	orbits map[int]*Orbit
	last   int // code of the previous park, even if since freed; 0 before the first
}

// NewLot returns an empty lot. ringer calls parkers back; onEvent, when not
// nil, is told every step of every orbit, one event at a time and in the
// order they happened. onEvent runs without the lot's lock held and may call
// the lot (except Close, which would wait for it), but it may run on
// whichever goroutine changed the lot last, after the call that caused the
// event has returned; it must not block for long.
func NewLot(clock Clock, cfg Config, ringer Ringer, onEvent func(Event)) *Lot {
	ctx, cancel := context.WithCancel(context.Background())
	return &Lot{
		clock:     clock,
		ringer:    ringer,
		onEvent:   onEvent,
		base:      ctx,
		stopAll:   cancel,
		cfg:       cfg.normalized(),
		tables:    make(map[string]*table),
		spellings: make(map[string]*table),
		calls:     make(map[string]*Orbit),
		pending:   make(map[string]bool),
	}
}

// SetConfig replaces the configuration. A ringback cycle runs with the
// configuration in force when it started; no orbit is dropped or moved.
func (l *Lot) SetConfig(cfg Config) {
	l.mu.Lock()
	l.cfg = cfg.normalized()
	l.mu.Unlock()
}

// fold is the case-insensitive key of policy identities, as in package policy.
func fold(identity string) string { return strings.ToLower(identity) }

// Park puts call in the orbit table of p, the parker's effective policy at
// park time, and returns its orbit. It fails with ErrNotAllowed when p does
// not allow call park, with ErrRangeFull when every code of p's range is
// occupied and, on a shared lot, with ErrUnavailable when the shared table
// cannot be reached; the lot is then unchanged. The ringback deadline is
// fixed now, at p's park timeout from now. On a shared lot the code is
// claimed in the shared table first, so that no node of a cluster hands it
// out twice; ctx bounds that.
func (l *Lot) Park(ctx context.Context, p policy.Policy, call Call, parked, parker Party) (*Orbit, error) {
	return l.park(ctx, p, call, parked, parker, 0)
}

// ParkAt is a directed park (SPEC §11): Park at exactly code, which must
// lie in p's pickup range (ErrOutOfRange otherwise) and be free
// (ErrOccupied otherwise). It does not move the code the next Park starts
// after.
func (l *Lot) ParkAt(ctx context.Context, p policy.Policy, call Call, parked, parker Party, code int) (*Orbit, error) {
	if code <= 0 {
		return nil, ErrOutOfRange
	}
	return l.park(ctx, p, call, parked, parker, code)
}

// park is Park, or ParkAt when want is not 0.
func (l *Lot) park(ctx context.Context, p policy.Policy, call Call, parked, parker Party, want int) (*Orbit, error) {
	id := call.CallID()
	l.mu.Lock()
	switch {
	case l.closed:
		return l.refuseLocked(p, parked, parker, ReasonClosed, ErrClosed)
	case !p.AllowCallPark:
		return l.refuseLocked(p, parked, parker, ReasonNotAllowed, ErrNotAllowed)
	case l.calls[id] != nil || l.pending[id]:
		return l.refuseLocked(p, parked, parker, ReasonParked, ErrParked)
	case want != 0 && (want < p.PickupRangeStart || want > p.PickupRangeEnd):
		return l.refuseLocked(p, parked, parker, ReasonOutOfRange, ErrOutOfRange)
	}
	now := l.clock.Now()
	o := &Orbit{
		lot:        l,
		policy:     p.Identity,
		call:       call,
		callID:     id,
		parked:     parked,
		parker:     parker,
		parkedAt:   now,
		timeout:    p.ParkTimeout(),
		state:      StateParked,
		ringbackAt: now.Add(p.ParkTimeout()),
	}
	t := l.table(p.Identity, true)
	if l.shared == nil {
		return l.parkHere(t, o, p, want)
	}
	return l.parkShared(ctx, t, o, p, want)
}

// refuseLocked emits the refusal of a park and releases l.mu, which the
// caller holds.
func (l *Lot) refuseLocked(p policy.Policy, parked, parker Party, reason string, err error) (*Orbit, error) {
	l.emit(Event{Kind: EventRefused, Orbit: OrbitInfo{Policy: p.Identity, ParkedParty: parked, Parker: parker}, Reason: reason})
	l.unlock()
	return nil, err
}

// parkHere gives o a code of a lot of its own (want, or the next free one
// when want is 0). It needs l.mu, and releases it.
func (l *Lot) parkHere(t *table, o *Orbit, p policy.Policy, want int) (*Orbit, error) {
	code, ok := want, t.orbits[want] == nil
	if want == 0 {
		code, ok = t.allocate(p.PickupRangeStart, p.PickupRangeEnd)
	}
	switch {
	case !ok && want != 0:
		return l.refuseLocked(p, o.parked, o.parker, ReasonOccupied, ErrOccupied)
	case !ok:
		return l.refuseLocked(p, o.parked, o.parker, ReasonRangeFull, ErrRangeFull)
	}
	o.code = code
	l.insert(t, o, want == 0)
	l.unlock()
	return o, nil
}

// parkShared claims o's code in the shared table, without l.mu while it
// waits for the store. It needs l.mu, and releases it.
func (l *Lot) parkShared(ctx context.Context, t *table, o *Orbit, p policy.Policy, want int) (*Orbit, error) {
	l.pending[o.callID] = true
	rec := l.shared.record(o)
	l.unlock()

	var err error
	if want != 0 {
		rec, err = l.shared.claim(ctx, rec, want)
	} else {
		rec, err = l.shared.allocate(ctx, rec, p.PickupRangeStart, p.PickupRangeEnd)
	}
	l.mu.Lock()
	delete(l.pending, o.callID)
	switch {
	case errors.Is(err, ErrRangeFull):
		return l.refuseLocked(p, o.parked, o.parker, ReasonRangeFull, err)
	case errors.Is(err, ErrOccupied):
		return l.refuseLocked(p, o.parked, o.parker, ReasonOccupied, err)
	case err != nil:
		return l.refuseLocked(p, o.parked, o.parker, ReasonUnavailable, err)
	case l.closed || t.orbits[rec.Code] != nil:
		// Closed meanwhile, or the shared table lost a record this lot
		// still holds: give the code back rather than park twice on it.
		l.shared.release(rec)
		if l.closed {
			return l.refuseLocked(p, o.parked, o.parker, ReasonClosed, ErrClosed)
		}
		return l.refuseLocked(p, o.parked, o.parker, ReasonUnavailable, fmt.Errorf("%w: code %d of %s is parked here but was free in the shared table", ErrUnavailable, rec.Code, p.Identity))
	}
	o.code, o.rev = rec.Code, rec.Revision
	l.insert(t, o, want == 0)
	l.unlock()
	return o, nil
}

// insert puts the new orbit o in table t, arms its deadline and reports
// the park; cursor says the next park starts after it. It needs l.mu.
func (l *Lot) insert(t *table, o *Orbit, cursor bool) {
	o.table = t
	t.orbits[o.code] = o
	if cursor {
		t.last = o.code
	}
	l.calls[o.callID] = o
	l.schedule(o, o.timeout)
	l.emit(o.event(EventPark, ""))
}

// allocate picks the code after the previous one, skipping occupied codes
// and wrapping from end to start. The first park, and a park after the range
// was edited so that the next code falls outside it, start at start.
func (t *table) allocate(start, end int) (int, bool) {
	if end < start {
		return 0, false
	}
	code := start
	if t.last != 0 && t.last+1 >= start && t.last+1 <= end {
		code = t.last + 1
	}
	for range end - start + 1 {
		if t.orbits[code] == nil {
			return code, true
		}
		if code++; code > end {
			code = start
		}
	}
	return 0, false
}

// Retrieve claims the orbit with code in the table of p, the retriever's
// effective policy, for by, the party dialing it. Of concurrent claims
// (retrieves, an answered ringback) exactly one gets the orbit; the others
// get ErrNoOrbit. A ringback in progress is cancelled. On success the code is free and the orbit final.
// The code need not lie in p's current range: an orbit parked before a range
// edit stays retrievable until it ends.
func (l *Lot) Retrieve(p policy.Policy, code int, by Party) (*Orbit, error) {
	l.mu.Lock()
	defer l.unlock()
	refuse := func(reason string, err error) (*Orbit, error) {
		l.emit(Event{Kind: EventRefused, Orbit: OrbitInfo{Policy: p.Identity, Code: code}, Reason: reason, By: by})
		return nil, err
	}
	if l.closed {
		return refuse(ReasonClosed, ErrClosed)
	}
	if !p.AllowCallPark {
		return refuse(ReasonNotAllowed, ErrNotAllowed)
	}
	var o *Orbit
	if t := l.table(p.Identity, false); t != nil {
		o = t.orbits[code]
	}
	if o == nil {
		return refuse(ReasonNoOrbit, ErrNoOrbit)
	}
	l.end(o, StateRetrieved)
	e := o.event(EventRetrieve, "")
	e.By = by
	l.emit(e)
	return o, nil
}

// Hangup frees at once the orbit of call, whose parked party hung up,
// cancelling its timer and any ringback in progress. It does nothing for a
// call that is not parked, or whose orbit was already claimed, and works
// after Close so that no orbit outlives its call.
func (l *Lot) Hangup(call Call) {
	l.mu.Lock()
	defer l.unlock()
	o := l.calls[call.CallID()]
	if o == nil {
		return
	}
	l.end(o, StateHungUp)
	l.emit(o.event(EventHangup, ""))
}

// end takes o out of its table in final state s: the code is free, the
// timer stopped and a ringback in progress cancelled. It needs l.mu.
func (l *Lot) end(o *Orbit, s State) {
	o.state = s
	delete(o.table.orbits, o.code)
	delete(l.calls, o.callID)
	l.stopTimer(o)
	if o.cancel != nil {
		o.cancel()
		o.cancel = nil
	}
	l.sync(o)
}

// OrbitOf is the orbit of the call with ID callID while it is parked or
// ringing back, nil otherwise (never parked, or claimed, or ended). The lot
// is the one record of whether a call is parked.
func (l *Lot) OrbitOf(callID string) *Orbit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[callID]
}

// At is the orbit with code in the table of the policy named identity
// (ignoring case), parked or ringing, and whether there is one: what a
// park lamp shows.
func (l *Lot) At(identity string, code int) (OrbitInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.table(identity, false); t != nil {
		if o := t.orbits[code]; o != nil {
			return o.info(), true
		}
	}
	return OrbitInfo{}, false
}

// Orbits returns a snapshot of every orbit, sorted by policy then code.
func (l *Lot) Orbits() []OrbitInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]OrbitInfo, 0, len(l.calls))
	for _, o := range l.calls {
		out = append(out, o.info())
	}
	SortInfos(out)
	return out
}

// SortInfos sorts orbits by policy (ignoring case), then code, as Orbits
// returns them.
func SortInfos(out []OrbitInfo) {
	slices.SortFunc(out, func(a, b OrbitInfo) int {
		if c := cmp.Compare(fold(a.Policy), fold(b.Policy)); c != 0 {
			return c
		}
		return cmp.Compare(a.Code, b.Code)
	})
}

// InUse is the number of orbits in the table of the policy named identity
// (ignoring case), parked or ringing.
func (l *Lot) InUse(identity string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.table(identity, false); t != nil {
		return len(t.orbits)
	}
	return 0
}

// table returns the orbit table of the policy named identity, ignoring case,
// making it when create is set; it needs l.mu. Tables are never removed: an
// empty one is a few words, and keeps the previous code of its policy.
func (l *Lot) table(identity string, create bool) *table {
	if t := l.spellings[identity]; t != nil {
		return t
	}
	key := fold(identity)
	t := l.tables[key]
	if t == nil {
		if !create {
			return nil
		}
		t = &table{orbits: make(map[int]*Orbit)}
		l.tables[key] = t
	}
	l.spellings[identity] = t
	return t
}

// Close stops every timer, cancels every ringback in progress and waits for
// the ringback goroutines to end, or for ctx. Afterwards Park and Retrieve
// fail with ErrClosed; orbits stay listed, without deadline, until Hangup
// frees them. Close may be called again to keep waiting.
func (l *Lot) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		for _, o := range l.calls {
			l.stopTimer(o)
		}
		l.stopAll()
		l.drained = make(chan struct{})
		go func() {
			l.wg.Wait()
			close(l.drained)
		}()
	}
	drained := l.drained
	l.unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// schedule arms the ringback deadline of o, d from now; it needs l.mu. Every
// armed timer counts in l.wg until its callback ends or Stop prevents it.
func (l *Lot) schedule(o *Orbit, d time.Duration) {
	o.gen++
	gen := o.gen
	l.wg.Add(1)
	o.timer = l.clock.AfterFunc(d, func() { l.deadline(o, gen) })
}

// stopTimer disarms the ringback deadline of o; it needs l.mu.
func (l *Lot) stopTimer(o *Orbit) {
	if o.timer == nil {
		return
	}
	if o.timer.Stop() {
		l.wg.Done()
	}
	o.timer = nil
}
