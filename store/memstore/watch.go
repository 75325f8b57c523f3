package memstore

import (
	"context"

	"github.com/parkswitch/parkswitch/store"
)

// orbitLog keeps the last store.WatchLag orbit changes for the watchers;
// it is guarded by Backend.mu.
type orbitLog struct {
	changes []store.OrbitChange
	seq     uint64        // of the last change
	wake    chan struct{} // closed and replaced on every change
}

func (l *orbitLog) add(c store.OrbitChange) {
	l.seq++
	l.changes = append(l.changes, c)
	if n := len(l.changes) - store.WatchLag; n > 0 {
		l.changes = l.changes[n:]
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *orbitLog) put(o store.Orbit) {
	l.add(store.OrbitChange{Policy: store.FoldPolicy(o.Policy), Code: o.Code, Orbit: cloneOrbit(o)})
}

func (l *orbitLog) gone(policy string, code int) {
	l.add(store.OrbitChange{Policy: store.FoldPolicy(policy), Code: code, Gone: true})
}

// since returns the changes after seq, and false when some of them are
// no longer kept.
func (l *orbitLog) since(seq uint64) ([]store.OrbitChange, bool) {
	first := l.seq - uint64(len(l.changes)) // seq of the change before the oldest kept
	if seq < first {
		return nil, false
	}
	return append([]store.OrbitChange(nil), l.changes[seq-first:]...), true
}

// WatchOrbits implements store.Orbits.
func (s *Store) WatchOrbits(ctx context.Context) (<-chan store.OrbitChange, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	reset := store.OrbitChange{Reset: true}
	for _, t := range s.b.orbits {
		for _, o := range t {
			reset.Orbits = append(reset.Orbits, cloneOrbit(o))
		}
	}
	store.SortOrbits(reset.Orbits)
	seq := s.b.watch.seq
	s.b.mu.Unlock()
	ch := make(chan store.OrbitChange, 64)
	ch <- reset
	follow(ctx, s, ch, func() ([]store.OrbitChange, <-chan struct{}, bool) {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		batch, ok := s.b.watch.since(seq)
		seq += uint64(len(batch))
		return batch, s.b.watch.wake, ok
	})
	return ch, nil
}
