package sip

import (
	"strings"
	"sync"
	"time"

	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/store"
)

// Park lamps across a cluster (SPEC §10, §11): a lamp shows the code's
// orbit wherever it is parked. Every node follows the orbit tables through
// the store's watch, which starts with the current state and is begun
// again, state and all, whenever it cannot go on without a gap (a lost
// connection), so that a missed change never leaves a lamp wrong. This
// node's own lot is fresher for its own orbits and is read first; an orbit
// it has ended is not shown from the store's record while the deletion is
// still on its way there.

const (
	orbitWatchRetry   = time.Second            // after a watch could not start
	orbitWatchRestart = 100 * time.Millisecond // after a watch ended, before the next
	orbitWatchTrouble = "orbit watch for park lamps not started"
	orbitWatchFirst   = 2 * time.Second // Start waits this long at most for the first view
)

// orbitID tells one park from another at the same code.
type orbitID struct {
	callID   string
	parkedAt int64
}

// orbitView is every node's orbits as the store's watch last showed them.
type orbitView struct {
	mu     sync.Mutex
	orbits map[lampKey]store.Orbit
	ended  map[lampKey]orbitID // ended here; the store's record may lag
}

func orbitKeyOf(policy string, code int) lampKey {
	return lampKey{policy: strings.ToLower(policy), code: code}
}

func idOf(o store.Orbit) orbitID { return orbitID{callID: o.CallID, parkedAt: o.ParkedAt.UnixNano()} }

// state is the lamp a stored orbit shows; false when the view has none
// at key (or one this node has ended).
func (v *orbitView) state(key lampKey) (lampState, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	o, ok := v.orbits[key]
	if !ok || v.ended[key] == idOf(o) {
		return lampState{}, false
	}
	return lampState{busy: true, since: o.ParkedAt.UnixNano(), parked: park.Party(o.ParkedParty)}, true
}

// apply takes in one message of the watch and returns the keys whose
// record changed.
func (v *orbitView) apply(c store.OrbitChange) []lampKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c.Reset {
		next := make(map[lampKey]store.Orbit, len(c.Orbits))
		for _, o := range c.Orbits {
			next[orbitKeyOf(o.Policy, o.Code)] = o
		}
		var keys []lampKey
		for k, o := range v.orbits {
			if n, ok := next[k]; !ok || idOf(n) != idOf(o) {
				keys = append(keys, k)
			}
		}
		for k, o := range next {
			if old, ok := v.orbits[k]; !ok || idOf(old) != idOf(o) {
				keys = append(keys, k)
			}
		}
		v.orbits = next
		for k, id := range v.ended {
			if o, ok := next[k]; !ok || idOf(o) != id {
				delete(v.ended, k)
			}
		}
		return keys
	}
	k := orbitKeyOf(c.Policy, c.Code)
	if c.Gone {
		delete(v.orbits, k)
		delete(v.ended, k)
		return []lampKey{k}
	}
	if v.orbits == nil {
		v.orbits = make(map[lampKey]store.Orbit)
	}
	v.orbits[k] = c.Orbit
	if id, ok := v.ended[k]; ok && id != idOf(c.Orbit) {
		delete(v.ended, k)
	}
	return []lampKey{k}
}

// noteEnded records that this node's lot ended the orbit id at key. It
// is kept even when the view has no such record yet: the watch may bring
// the park after its end. It goes when the key is freed or holds another
// park, so there is one at most per code.
func (v *orbitView) noteEnded(key lampKey, id orbitID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ended == nil {
		v.ended = make(map[lampKey]orbitID)
	}
	v.ended[key] = id
}

// lampEvent is told of every change of an orbit of this node's lot.
func (s *Switch) lampEvent(e park.Event) {
	key := orbitKeyOf(e.Orbit.Policy, e.Orbit.Code)
	switch e.Kind {
	case park.EventRetrieve, park.EventRingbackAnswered, park.EventAbandon, park.EventHangup:
		s.lamps.view.noteEnded(key, orbitID{callID: e.CallID, parkedAt: e.Orbit.ParkedAt.UnixNano()})
	}
	s.lamps.changed(e.Orbit.Policy, e.Orbit.Code)
}

// startOrbitWatch starts watchOrbits and waits, bounded, until the lamps
// have a first view of every node's orbits (or the store said it cannot
// give one yet), so that the first NOTIFY of a lamp is right.
func (s *Switch) startOrbitWatch() {
	ready := make(chan struct{})
	s.wg.Add(1)
	go s.watchOrbits(ready)
	t := time.NewTimer(orbitWatchFirst)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
		s.log.Warn().Dur("waited", orbitWatchFirst).Msg("park lamps start without the orbits of other nodes; they follow once the store answers")
	}
}

// watchOrbits feeds the lamps from the store's orbit watch until the
// switch stops, watching again whenever a watch ends. It closes ready
// after its first try.
func (s *Switch) watchOrbits(ready chan struct{}) {
	defer s.wg.Done()
	first := func() {
		if ready != nil {
			close(ready)
			ready = nil
		}
	}
	defer first()
	for s.ctx.Err() == nil {
		ch, err := s.opts.Store.WatchOrbits(s.ctx)
		if err != nil {
			first()
			if s.ctx.Err() == nil {
				s.storeTrouble(orbitWatchTrouble, err)
			}
			s.pause(orbitWatchRetry)
			continue
		}
		n := 0
		for c := range ch {
			n++
			for _, k := range s.lamps.view.apply(c) {
				s.lamps.changed(k.policy, k.code)
			}
			first()
		}
		if s.ctx.Err() == nil {
			s.log.Info().Int("changes", n).Msg("orbit watch for park lamps ended; watching again")
		}
		s.pause(orbitWatchRestart)
	}
}

// pause waits d, or less when the switch stops.
func (s *Switch) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}
