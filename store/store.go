// Package store is the seam between the switch and its shared, durable
// state (SPEC §10): registrations, orbits, parked-leg dialogs, node
// liveness, events and call records. park/ and sip/ depend on the small
// interfaces here; package natsstore implements them on NATS JetStream and
// package memstore in memory for unit tests. This package imports no other
// package of the project and no NATS type.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on. Implementations wrap them with %w and context,
// so test them with errors.Is.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrExists      = errors.New("store: already exists")                   // create-if-absent lost: the key is taken
	ErrConflict    = errors.New("store: revision conflict")                // compare-and-set lost: the record changed or went since it was read
	ErrUnavailable = errors.New("store: unavailable")                      // the backing store cannot be reached in time; retry later
	ErrCorrupt     = errors.New("store: corrupt record")                   // a record that does not decode; lists skip it
	ErrFull        = errors.New("store: every code of the range is taken") // Allocate found no free code
	ErrInvalid     = errors.New("store: invalid argument")
	ErrClosed      = errors.New("store: closed")
)

// Store is every part of the state one node of the switch uses. Callers
// should depend on the smallest interface they need.
type Store interface {
	Registrations
	Orbits
	Dialogs
	Nodes
	Events
	Records
	// Close releases the store: it stops every goroutine it started (and an
	// embedded server) and makes further calls fail with ErrClosed.
	Close() error
}

// Registrations holds the contact bindings of every user (SPEC §4
// registrar). A binding is gone at its Expires, whether or not anyone
// removes it.
type Registrations interface {
	// Bindings returns the bindings of user that have not expired, in the
	// order they were first registered; none is not an error.
	Bindings(ctx context.Context, user string) ([]Binding, error)
	// UpdateBindings replaces the bindings of user with fn's result on the
	// live ones, atomically: when another writer changed them meanwhile,
	// fn runs again on the new ones, so it must have no side effects.
	// Bindings of the result that have expired are dropped; an empty result
	// removes the user. An error from fn is returned as is and nothing is
	// written. It returns the bindings in force afterwards.
	UpdateBindings(ctx context.Context, user string, fn func(live []Binding) ([]Binding, error)) ([]Binding, error)
	// AllBindings returns every live binding, sorted by user, then as
	// Bindings orders them.
	AllBindings(ctx context.Context) ([]Binding, error)
}

// Orbits holds the orbit tables of every policy. Records are versioned:
// every read returns the record's Revision, and UpdateOrbit and DeleteOrbit
// succeed only on the current one, so of two nodes racing for an orbit
// exactly one wins. Policy identities are compared ignoring case.
type Orbits interface {
	// CreateOrbit stores o if its code is free in its policy's table and
	// returns it with its Revision; ErrExists when the code is taken.
	CreateOrbit(ctx context.Context, o Orbit) (Orbit, error)
	// GetOrbit returns the orbit with code in policy's table; ErrNotFound
	// when the code is free, ErrCorrupt when its record does not decode.
	GetOrbit(ctx context.Context, policy string, code int) (Orbit, error)
	// UpdateOrbit replaces the orbit whose Revision o carries and returns it
	// with its new Revision; ErrConflict when the record changed or went
	// since o was read.
	UpdateOrbit(ctx context.Context, o Orbit) (Orbit, error)
	// DeleteOrbit frees o's code if o.Revision is current (ErrConflict
	// otherwise), or whatever its revision when o.Revision is 0. A claim
	// (retrieve, answered ringback) is a DeleteOrbit with the revision read.
	DeleteOrbit(ctx context.Context, o Orbit) error
	// ListOrbits returns the orbits of policy's table, or of every table when
	// policy is "", sorted by folded policy then code. Corrupt records are
	// skipped.
	ListOrbits(ctx context.Context, policy string) ([]Orbit, error)
	// LastCode is the code of the previous park in policy's table, even if
	// since freed; 0 before the first. It is a hint for Allocate, shared by
	// every node.
	LastCode(ctx context.Context, policy string) (int, error)
	// SetLastCode records code as the previous park in policy's table.
	SetLastCode(ctx context.Context, policy string, code int) error
	// WatchOrbits follows every table: the channel delivers first a Reset
	// holding every orbit, then the changes as they are written, in order.
	// A change an orbit's later one superseded before the watch delivered
	// it may be left out (a store keeps each orbit's latest write only), so
	// the receiver's view always converges on every orbit's latest state.
	// It is closed when ctx is done, the store closes, or the watch cannot
	// go on without a gap (the connection to the store was lost and came
	// back, or the receiver fell WatchLag changes behind); a receiver then
	// watches again and replaces its view with the new Reset.
	WatchOrbits(ctx context.Context) (<-chan OrbitChange, error)
}

// Dialogs holds snapshots of the dialogs a node would need to go on with,
// or end, after a crash or on another node: parked legs and bridged legs.
type Dialogs interface {
	// PutDialog stores d, keyed by its Call-ID and local tag, and returns it
	// with its new Revision. With d.Revision 0 it writes whatever is there;
	// otherwise only over that revision (ErrConflict when it changed).
	PutDialog(ctx context.Context, d Dialog) (Dialog, error)
	// GetDialog returns the dialog stored for callID and localTag;
	// ErrNotFound when there is none.
	GetDialog(ctx context.Context, callID, localTag string) (Dialog, error)
	// DeleteDialog removes the dialog; removing one that is not there is not
	// an error.
	DeleteDialog(ctx context.Context, callID, localTag string) error
	// ListDialogs returns the dialogs owned by node, or every dialog when
	// node is "", sorted by Call-ID then local tag. Corrupt records are
	// skipped.
	ListDialogs(ctx context.Context, node string) ([]Dialog, error)
}

// Nodes tells which nodes of the cluster are alive. Every open store
// heartbeats for its node until Close; a node that stops (crash, kill -9,
// partition) drops out of ListNodes within the implementation's node TTL.
type Nodes interface {
	// NodeID is this store's node.
	NodeID() string
	// ListNodes returns the nodes whose heartbeat is current, this one
	// included, sorted by ID.
	ListNodes(ctx context.Context) ([]Node, error)
	// SetNodeAddr changes where other nodes reach this one over SIP (its
	// Node.Addr): a switch knows its bound address only once it listens.
	// It is recorded at once and kept by every later heartbeat, even when
	// this write fails.
	SetNodeAddr(ctx context.Context, addr string) error
}

// Events carries what happened, cluster-wide, in one ordered log: the one
// source of truth for "what changed" (SSE, BLF lamps, park board, webhooks).
type Events interface {
	// PublishEvent appends e (At defaults to now) and returns it with its Seq.
	PublishEvent(ctx context.Context, e Event) (Event, error)
	// SubscribeEvents delivers events in order on the returned channel:
	// those from sequence from on (still retained), then live ones; with
	// from 0, only events published after the call. The channel is closed
	// when ctx is done or the store closes. A subscriber that does not keep
	// up holds back only its own delivery.
	SubscribeEvents(ctx context.Context, from uint64) (<-chan Event, error)
}

// Records keeps one call record per call for the retention the store was
// opened with (cdr_days, and in the NATS store cdr_max_mb).
type Records interface {
	// AppendRecord stores r; Ended defaults to now.
	AppendRecord(ctx context.Context, r CallRecord) error
	// ListRecords returns up to limit records (DefaultRecordLimit when limit
	// is not positive, at most MaxRecordLimit) appended at or after since,
	// oldest first. Corrupt records are skipped.
	ListRecords(ctx context.Context, since time.Time, limit int) ([]CallRecord, error)
}

// LogEntry is one write to the logs: an event or, when Record is set, a
// call record.
type LogEntry struct {
	Event  Event
	Record *CallRecord
}

// Log is implemented by stores that write many log entries faster together
// than one by one (natsstore: without waiting for each acknowledgement).
type Log interface {
	// AppendLog writes entries, events in their order, and returns one
	// error per entry, nil for those written.
	AppendLog(ctx context.Context, entries []LogEntry) []error
}

// AppendLog writes entries to s: in one round when s is a Log, else one at
// a time. It returns one error per entry.
func AppendLog(ctx context.Context, s interface {
	Events
	Records
}, entries []LogEntry) []error {
	if l, ok := s.(Log); ok {
		return l.AppendLog(ctx, entries)
	}
	errs := make([]error, len(entries))
	for i, e := range entries {
		if e.Record != nil {
			errs[i] = s.AppendRecord(ctx, *e.Record)
		} else {
			_, errs[i] = s.PublishEvent(ctx, e.Event)
		}
	}
	return errs
}

// IgnoreNotFound is err, or nil when err says the record is not there:
// for deletes, which mean "make it be gone".
func IgnoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Limits and defaults shared by the implementations.
const (
	WatchLag           = 4096 // changes a WatchOrbits receiver may be behind
	DefaultCDRDays     = 30
	DefaultCDRMaxBytes = 1 << 30 // bound of the call records on disk; the oldest go first
	DefaultRecordLimit = 100
	MaxRecordLimit     = 10000
)

// RecordLimit normalises a ListRecords limit.
func RecordLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultRecordLimit
	case limit > MaxRecordLimit:
		return MaxRecordLimit
	}
	return limit
}
