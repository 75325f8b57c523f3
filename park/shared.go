package park

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/store"
)

// sharing is what a lot keeps to share its tables through the state store
// (SPEC §10): codes are claimed there atomically, so that no two nodes of a
// cluster hand out one code, and every change of an orbit is written there,
// so that a restarted node or another one can take the orbit over.
type sharing struct {
	orbits store.Orbits
	node   string
	log    zerolog.Logger
	writes *store.WriteBehind // every change after the park itself
}

// Share makes the lot's tables shared through st as node. It must be
// called before the first Park. Allocation waits for st; every later
// change is written behind, and retried while st is unavailable.
func (l *Lot) Share(st store.Orbits, node string, log zerolog.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shared = &sharing{orbits: st, node: node, log: log, writes: store.NewWriteBehind(log, 0)}
}

// Node is the node the lot parks for, "" for a lot of its own.
func (l *Lot) Node() string {
	if l.shared == nil {
		return ""
	}
	return l.shared.node
}

// record is o as the shared table stores it; it needs l.mu.
func (sh *sharing) record(o *Orbit) store.Orbit {
	state := o.state
	if state != StateRinging {
		state = StateParked
	}
	return store.Orbit{
		Policy: o.policy, Code: o.code, CallID: o.callID,
		ParkedParty: store.Party(o.parked), Parker: store.Party(o.parker),
		ParkedAt: o.parkedAt, RingbackAt: o.ringbackAt,
		TimeoutSeconds: int(o.timeout / time.Second),
		State:          string(state), Owner: sh.node, Ringbacks: o.ringbacks,
		Revision: o.rev,
	}
}

// allocate claims a free code of start–end for rec in the shared table.
func (sh *sharing) allocate(ctx context.Context, rec store.Orbit, start, end int) (store.Orbit, error) {
	out, err := store.Allocate(ctx, sh.orbits, rec, start, end)
	switch {
	case errors.Is(err, store.ErrFull):
		return out, ErrRangeFull
	case err != nil:
		return out, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return out, nil
}

// claim takes exactly code for rec in the shared table (a directed park).
func (sh *sharing) claim(ctx context.Context, rec store.Orbit, code int) (store.Orbit, error) {
	rec.Code = code
	out, err := sh.orbits.CreateOrbit(ctx, rec)
	switch {
	case errors.Is(err, store.ErrExists):
		return out, ErrOccupied
	case err != nil:
		return out, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return out, nil
}

// release gives back a code claimed in the shared table but not parked.
func (sh *sharing) release(rec store.Orbit) {
	sh.writes.Queue(orbitKey(rec.Policy, rec.Code), func(ctx context.Context) error {
		return store.IgnoreNotFound(sh.orbits.DeleteOrbit(ctx, rec))
	})
}

func orbitKey(policy string, code int) string { return fold(policy) + "/" + strconv.Itoa(code) }

// sync writes o's current state to the shared table, behind: a final
// orbit is deleted, a live one updated. It needs l.mu. A write that finds
// the record changed means another node took the orbit over (this node
// was thought dead): the write is dropped with a warning.
func (l *Lot) sync(o *Orbit) {
	sh := l.shared
	if sh == nil {
		return
	}
	sh.writes.Queue(orbitKey(o.policy, o.code), func(ctx context.Context) error {
		l.mu.Lock()
		rec, final := sh.record(o), o.state.final()
		l.mu.Unlock()
		if final {
			err := store.IgnoreNotFound(sh.orbits.DeleteOrbit(ctx, rec))
			return sh.conflict(err, rec)
		}
		n, err := sh.orbits.UpdateOrbit(ctx, rec)
		if err == nil {
			l.mu.Lock()
			if o.rev == rec.Revision {
				o.rev = n.Revision
			}
			l.mu.Unlock()
		}
		return sh.conflict(err, rec)
	})
}

// conflict turns a lost compare-and-set into a logged, dropped write.
func (sh *sharing) conflict(err error, rec store.Orbit) error {
	if errors.Is(err, store.ErrConflict) {
		sh.log.Warn().Str("policy", rec.Policy).Int("orbit", rec.Code).Msg("orbit changed in the shared table by another node; this node's change is dropped")
		return nil
	}
	return err
}

// final reports whether s is one of the states that end an orbit.
func (s State) final() bool {
	switch s {
	case StateRetrieved, StateAnswered, StateAbandoned, StateHungUp:
		return true
	}
	return false
}

// Adopt puts an orbit from the shared table back in the lot for call: after
// a restart of this node, or taken over from a node that died. rec must be
// owned by this node already (the caller won it by compare-and-set). The
// ringback deadline is rec's: one that has passed rings at once. Nothing
// is reported as a new park.
func (l *Lot) Adopt(rec store.Orbit, call Call) (*Orbit, error) {
	l.mu.Lock()
	defer l.unlock()
	if l.closed {
		return nil, ErrClosed
	}
	t := l.table(rec.Policy, true)
	if t.orbits[rec.Code] != nil || l.calls[call.CallID()] != nil {
		return nil, fmt.Errorf("adopt %s/%d: %w", rec.Policy, rec.Code, ErrParked)
	}
	timeout := time.Duration(rec.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = policy.Default(policy.GlobalIdentity).ParkTimeout()
	}
	o := &Orbit{
		lot: l, table: t, policy: rec.Policy, code: rec.Code, call: call, callID: call.CallID(),
		parked: Party(rec.ParkedParty), parker: Party(rec.Parker), parkedAt: rec.ParkedAt,
		timeout: timeout, state: StateParked, ringbackAt: rec.RingbackAt, ringbacks: rec.Ringbacks,
		rev: rec.Revision,
	}
	t.orbits[o.code] = o
	l.calls[o.callID] = o
	l.schedule(o, max(rec.RingbackAt.Sub(l.clock.Now()), 0))
	return o, nil
}

// Release writes what is still pending to the shared table, bounded by ctx,
// and stops writing: call it once, after Close and after the calls that
// end with the switch have ended. Orbits left in the lot stay in the shared
// table for this node's next start or another node to take over.
func (l *Lot) Release(ctx context.Context) error {
	sh := l.shared
	if sh == nil {
		return nil
	}
	defer sh.writes.Close()
	if !sh.writes.Flush(ctx) {
		return fmt.Errorf("park: %d orbit writes not in the shared table: %w", sh.writes.Pending(), ctx.Err())
	}
	return nil
}
