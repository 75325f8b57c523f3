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
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		for {
			s.b.mu.Lock()
			batch, ok := s.b.watch.since(seq)
			wake := s.b.watch.wake
			s.b.mu.Unlock()
			if !ok {
				return // fell too far behind: the receiver watches again
			}
			for _, c := range batch {
				select {
				case ch <- c:
					seq++
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
	return ch, nil
}
