package natsstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parkswitch/parkswitch/store"
)

// The orbit watch is a key-value watch of the orbits bucket: the current
// value of every key first, then each write. Its ordered consumer picks up
// where it left off after a lost connection, but a key freed meanwhile
// whose delete marker has since expired (markerTTL) would be missed, so
// the watch ends at every reconnect and the receiver reads the state anew.

const (
	watchBuffer     = 256             // changes queued for a receiver
	watchDrainLimit = 5 * time.Second // bound of emptying a stopped watcher
)

// signal is closed and replaced each time it fires.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next fire.
func (g *signal) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *signal) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

// WatchOrbits implements store.Orbits. The watcher lives on a context of
// its own, ended with the watch; setting it up is bounded by the op
// timeout, past which it is abandoned.
func (s *Store) WatchOrbits(ctx context.Context) (<-chan store.OrbitChange, error) {
	what := "watch orbits"
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return nil, err
	}
	defer cancel()
	lost := s.reconnected.wait() // before the watch: a reconnect during its set-up ends it too
	gen := s.nc.Stats().Reconnects
	sub, stop := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.ctx, stop)
	slow := context.AfterFunc(c, stop)
	var reset store.OrbitChange
	w, err := s.orbits.kv.WatchFiltered(sub, []string{"o.>"})
	if err == nil {
		reset, err = s.initialOrbits(c, w)
	}
	if !slow() && err == nil {
		err = c.Err()
	}
	if err != nil {
		if w != nil {
			stopWatcher(w)
		}
		unhook()
		stop()
		return nil, s.fail(ctx, what, err)
	}
	out := make(chan store.OrbitChange, watchBuffer)
	out <- reset
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stopWatcher(w) // last: unsubscribing may wait on the server
		defer unhook()
		defer stop()
		defer close(out) // first: the receiver may watch again at once
		s.followOrbits(sub, w, lostSince{s, gen, lost}, out)
	}()
	return out, nil
}

// initialOrbits reads the values the watch starts with, up to its marker.
func (s *Store) initialOrbits(ctx context.Context, w jetstream.KeyWatcher) (store.OrbitChange, error) {
	reset := store.OrbitChange{Reset: true}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return reset, errors.New("orbit watch closed")
			}
			if e == nil {
				store.SortOrbits(reset.Orbits)
				return reset, nil
			}
			if c, ok := s.orbitChange(e); ok && !c.Gone {
				reset.Orbits = append(reset.Orbits, c.Orbit)
			}
		case <-ctx.Done():
			return reset, ctx.Err()
		}
	}
}

// followOrbits passes each write on to out until ctx ends, the watcher
// closes or the connection came back after a loss.
func (s *Store) followOrbits(ctx context.Context, w jetstream.KeyWatcher, l lostSince, out chan<- store.OrbitChange) {
	lost := l.ch
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			c, ok := s.orbitChange(e)
			if !ok {
				continue
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			case <-lost:
				if lost = l.again(); lost == nil {
					return
				}
			}
		case <-lost:
			if lost = l.again(); lost == nil {
				s.log.Debug().Msg("orbit watch ended by a reconnect; the receiver reads the state anew")
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// lostSince tells a reconnect after a watch began from one before it
// whose handler ran late.
type lostSince struct {
	s   *Store
	gen uint64 // reconnects counted when the watch began
	ch  <-chan struct{}
}

// again is the channel to wait on after ch fired: nil when the
// connection was lost and came back since the watch began.
func (l lostSince) again() <-chan struct{} {
	if l.s.nc.Stats().Reconnects != l.gen {
		return nil
	}
	ch := l.s.reconnected.wait()
	if l.s.nc.Stats().Reconnects != l.gen { // a reconnect between the two reads
		return nil
	}
	return ch
}

// stopWatcher unsubscribes w and empties its channel: the client blocks
// delivering to a full one, and only then closes it.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	t := time.NewTimer(watchDrainLimit)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

// orbitChange reads one entry of the watch; false for a key that is no
// orbit's.
func (s *Store) orbitChange(e jetstream.KeyValueEntry) (store.OrbitChange, bool) {
	if e == nil {
		return store.OrbitChange{}, false
	}
	policy, code, ok := parseOrbitKey(e.Key())
	if !ok {
		return store.OrbitChange{}, false
	}
	c := store.OrbitChange{Policy: policy, Code: code}
	if e.Operation() != jetstream.KeyValuePut {
		c.Gone = true
		return c, true
	}
	var o store.Orbit
	if s.orbits.decode(entry{key: e.Key(), value: e.Value(), rev: e.Revision()}, &o) != nil {
		c.Gone = true // as ListOrbits skips it: no orbit there that anyone can use
		return c, true
	}
	o.Revision = e.Revision()
	c.Orbit = o
	return c, true
}

// parseOrbitKey is orbitKey read back: the folded policy and the code.
func parseOrbitKey(key string) (string, int, bool) {
	rest, ok := strings.CutPrefix(key, "o.")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", 0, false
	}
	code, err := strconv.Atoi(rest[i+1:])
	if err != nil || code <= 0 {
		return "", 0, false
	}
	policy, err := unesc(rest[:i])
	if err != nil {
		return "", 0, false
	}
	return policy, code, true
}

// unesc reverses esc.
func unesc(s string) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			sb.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("key token %q: short escape", s)
		}
		b, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", fmt.Errorf("key token %q: %w", s, err)
		}
		sb.WriteByte(b[0])
		i += 2
	}
	return sb.String(), nil
}
