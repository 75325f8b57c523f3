package sip

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/store"
)

// Registrations are recorded in the store (SPEC §10): a REGISTER writes
// the user's bindings of every node through store.UpdateBindings, whose
// TTL ends them, and this node keeps a copy of its own for calls. When the
// store cannot be written the REGISTER is accepted into the copy alone and
// written again by syncRegistrations, or by the phone's next refresh.
const (
	registerStoreTimeout = time.Second     // a REGISTER waits no longer for the store
	storeSyncInterval    = 2 * time.Second // how often bindings the store lacks are written again
	loadTimeout          = 5 * time.Second // bound of reading this node's bindings at start
	storeLogEvery        = 10 * time.Second
)

// register applies r through the store and returns the user's bindings in
// force, of every node; on a store failure, those of this node.
func (s *Switch) register(r registration) []Binding {
	mu := s.reg.userLock(r.user)
	mu.Lock()
	defer mu.Unlock()
	node := s.opts.Store.NodeID()
	now := s.opts.Now()
	dirty := s.reg.isDirty(r.user)
	local := s.reg.Lookup(r.user)
	ctx, cancel := context.WithTimeout(s.ctx, registerStoreTimeout)
	defer cancel()
	out, err := s.opts.Store.UpdateBindings(ctx, r.user, func(live []store.Binding) ([]store.Binding, error) {
		cur := fromStore(live)
		if dirty {
			cur = withOwn(cur, local, node)
		}
		return toStore(applyTo(cur, r, now, node)), nil
	})
	if err != nil {
		s.storeTrouble("registration kept on this node only, written when the store is back", err)
		s.reg.markDirty(r.user)
		return s.reg.apply(r)
	}
	bs := fromStore(out)
	s.reg.replace(r.user, own(bs, node))
	s.reg.clean(r.user)
	return bs
}

// flushUser writes the local bindings of a user the store lacks.
func (s *Switch) flushUser(ctx context.Context, user string) error {
	mu := s.reg.userLock(user)
	mu.Lock()
	defer mu.Unlock()
	node := s.opts.Store.NodeID()
	local := s.reg.Lookup(user)
	out, err := s.opts.Store.UpdateBindings(ctx, user, func(live []store.Binding) ([]store.Binding, error) {
		return toStore(withOwn(fromStore(live), local, node)), nil
	})
	if err != nil {
		return err
	}
	s.reg.replace(user, own(fromStore(out), node))
	s.reg.clean(user)
	return nil
}

// loadBindings reads this node's bindings from the store into the local
// copy: after a restart, phones registered before are reachable at once.
func (s *Switch) loadBindings() bool {
	ctx, cancel := context.WithTimeout(s.ctx, loadTimeout)
	defer cancel()
	all, err := s.opts.Store.AllBindings(ctx)
	if err != nil {
		s.storeTrouble("bindings of this node not loaded yet; retrying", err)
		return false
	}
	n := s.reg.load(own(fromStore(all), s.opts.Store.NodeID()))
	s.log.Info().Int("bindings", n).Msg("registrations loaded from the store")
	return true
}

// syncRegistrations loads this node's bindings if Start could not, and
// writes the bindings the store missed, until the switch stops.
func (s *Switch) syncRegistrations(loaded bool) {
	defer s.wg.Done()
	s.every(storeSyncInterval, func() {
		if !loaded {
			loaded = s.loadBindings()
		}
		for _, u := range s.reg.dirtyUsers() {
			ctx, cancel := context.WithTimeout(s.ctx, registerStoreTimeout)
			err := s.flushUser(ctx, u)
			cancel()
			if err != nil {
				s.storeTrouble("registrations still not written", err)
				break // the store is still down: try the rest next time
			}
			s.log.Info().Str("user", u).Msg("registration written to the store")
		}
	})
}

// storeTrouble logs a store failure at most once per storeLogEvery for
// each what (a constant: the set is bounded), with how many were not
// logged since.
func (s *Switch) storeTrouble(what string, err error) {
	s.storeLogMu.Lock()
	r := s.storeLog[what]
	if r == nil {
		r = new(rateLimit)
		s.storeLog[what] = r
	}
	s.storeLogMu.Unlock()
	if ok, skipped := r.allow(time.Now(), storeLogEvery); ok {
		s.log.Warn().Err(err).Int("not_logged", skipped).Msg("state store: " + what)
	}
}

// rateLimit lets one event through per interval and counts the others.
type rateLimit struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (r *rateLimit) allow(now time.Time, every time.Duration) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < every {
		r.skipped++
		return false, 0
	}
	n := r.skipped
	r.last, r.skipped = now, 0
	return true, n
}

// own keeps the bindings of bs held by node.
func own(bs []Binding, node string) []Binding {
	return slices.DeleteFunc(slices.Clone(bs), func(b Binding) bool { return b.Node != node })
}

// withOwn replaces node's bindings in cur with local, keeping the others'.
func withOwn(cur, local []Binding, node string) []Binding {
	out := slices.DeleteFunc(slices.Clone(cur), func(b Binding) bool { return b.Node == node })
	for _, b := range local {
		if !b.Static {
			b.Node = node
			out = append(out, b)
		}
	}
	return out
}

func toStore(bs []Binding) []store.Binding {
	out := make([]store.Binding, 0, len(bs))
	for _, b := range bs {
		out = append(out, store.Binding{
			User: b.User, Contact: b.Contact.String(), Source: b.Source, Transport: b.Transport,
			Expires: b.Expires, CallID: b.CallID, CSeq: b.CSeq, UserAgent: b.UserAgent, Node: b.Node,
		})
	}
	return out
}

// fromStore converts stored bindings; one whose contact does not parse
// is skipped, as the next REGISTER of its phone replaces it.
func fromStore(bs []store.Binding) []Binding {
	out := make([]Binding, 0, len(bs))
	for _, b := range bs {
		var uri sip.Uri
		if err := sip.ParseUri(b.Contact, &uri); err != nil || uri.Host == "" {
			continue
		}
		out = append(out, Binding{
			User: b.User, Contact: uri, Source: b.Source, Transport: b.Transport,
			Expires: b.Expires, CallID: b.CallID, CSeq: b.CSeq, UserAgent: b.UserAgent, Node: b.Node,
		})
	}
	return out
}

// storedRegistrations lists the bindings of every node as the store has
// them; on a store failure, this node's.
func (s *Switch) storedRegistrations() []Binding {
	ctx, cancel := context.WithTimeout(s.ctx, registerStoreTimeout)
	defer cancel()
	all, err := s.opts.Store.AllBindings(ctx)
	if err != nil {
		s.storeTrouble("registrations listed from this node only", err)
		return s.reg.All()
	}
	return fromStore(all)
}
