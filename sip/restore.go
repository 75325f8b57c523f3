package sip

import (
	"context"
	"time"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/store"
)

// This file takes parked calls up again from the state store (SPEC §10):
// this node's own after a restart, on the same relay ports, and those of a
// node that died, on this node's ports. Each is re-INVITEd onto music with
// its code and ringback deadline kept; each leg of a call that was bridged
// gets a BYE instead of dead air.

// Timing of the watch on the other nodes.
const (
	nodeWatchEvery = 500 * time.Millisecond // how often the view watchNodes keeps is looked at
	fullScanEvery  = 30 * time.Second       // every orbit's owner is checked this often
	adoptTimeout   = 30 * time.Second       // bound of one node's takeover
)

// watchState restores this node's calls, then takes over those of nodes
// that stop; it runs until the switch shuts down.
func (s *Switch) watchState() {
	defer s.wg.Done()
	self := s.opts.Store.NodeID()
	s.adoptNode(self, true)
	var live map[string]bool
	lastScan := time.Time{}
	s.every(nodeWatchEvery, func() {
		now := live
		live = s.liveNodes()
		if live == nil {
			return // not read yet
		}
		for id := range now {
			if !live[id] && id != self {
				s.log.Warn().Str("node", id).Msg("node stopped: taking over its parked calls")
				s.adoptNode(id, false)
			}
		}
		if time.Since(lastScan) >= fullScanEvery {
			lastScan = time.Now()
			for _, id := range s.orphanOwners(live) {
				s.adoptNode(id, false)
			}
		}
	})
}

// liveNodes is the set of live nodes as watchNodes last read it; nil
// before the first read, or while the store cannot say.
func (s *Switch) liveNodes() map[string]bool { return s.nodes(false).live }

// orphanOwners lists the nodes, not live, that own orbits or dialogs.
func (s *Switch) orphanOwners(live map[string]bool) []string {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	seen := map[string]bool{}
	var out []string
	add := func(owner string) {
		if owner != "" && !live[owner] && !seen[owner] {
			seen[owner] = true
			out = append(out, owner)
		}
	}
	if orbits, err := s.opts.Store.ListOrbits(ctx, ""); err == nil {
		for _, o := range orbits {
			add(o.Owner)
		}
	}
	if dialogs, err := s.opts.Store.ListDialogs(ctx, ""); err == nil {
		for _, d := range dialogs {
			add(d.Owner)
		}
	}
	return out
}

// adoptNode takes up what node from held: its parked calls are resumed
// here, its other dialogs hung up. With own set, from is this node after
// a restart; otherwise each record is won by compare-and-set first, so of
// several nodes taking over one, exactly one gets each call.
func (s *Switch) adoptNode(from string, own bool) {
	ctx, cancel := context.WithTimeout(s.ctx, adoptTimeout)
	defer cancel()
	st, self := s.opts.Store, s.opts.Store.NodeID()
	dialogs, err := st.ListDialogs(ctx, from)
	if err != nil {
		s.log.Warn().Err(err).Str("node", from).Msg("cannot list the stored dialogs")
		return
	}
	orbits, err := st.ListOrbits(ctx, "")
	if err != nil {
		s.log.Warn().Err(err).Str("node", from).Msg("cannot list the stored orbits")
		return
	}
	parked := map[string]store.Dialog{}
	for _, d := range dialogs {
		if d.Parked {
			parked[d.Call] = d
		}
	}
	used := map[string]bool{}
	resumed := 0
	for _, o := range orbits {
		if o.Owner != from {
			continue
		}
		d, ok := parked[o.CallID]
		if !ok {
			// Parked, but the dialog never reached the store: nothing
			// can reach the phone.
			s.log.Warn().Str("policy", o.Policy).Int("orbit", o.Code).Str("call_id", o.CallID).Msg("stored orbit has no dialog: freed")
			_ = store.IgnoreNotFound(st.DeleteOrbit(ctx, o))
			continue
		}
		if !own {
			o.Owner = self
			if o, err = st.UpdateOrbit(ctx, o); err != nil {
				continue // another node won it, or the store went
			}
		}
		used[d.CallID+"/"+d.LocalTag] = true
		if s.resume(ctx, o, d, own) {
			resumed++
		}
	}
	ended := 0
	for _, d := range dialogs {
		if used[d.CallID+"/"+d.LocalTag] {
			continue
		}
		if !own {
			d.Owner = self
			if _, err := st.PutDialog(ctx, d); err != nil {
				continue
			}
		}
		s.byeSnapshot(d)
		ended++
	}
	if resumed > 0 || ended > 0 {
		s.log.Info().Str("node", from).Int("parked", resumed).Int("hung_up", ended).Msg("calls taken up from the state store")
	}
}

// resume rebuilds parked call o from its parked leg's dialog d, on d's
// relay port when keepPort is set and it is free, and moves the phone onto
// music with a re-INVITE. It reports whether the call is parked here now;
// otherwise the orbit and the dialog are gone from the store.
func (s *Switch) resume(ctx context.Context, o store.Orbit, d store.Dialog, keepPort bool) bool {
	var ep *media.Endpoint
	var err error
	if keepPort {
		ep, err = s.opts.Ports.OpenPort(d.RelayPort)
	}
	if ep == nil {
		ep, err = s.opts.Ports.Open()
	}
	log := s.log.With().Str("call_id", d.Call).Int("orbit", o.Code).Str("policy", o.Policy).Logger()
	give := func(why string, err error) bool {
		log.Warn().Err(err).Msg("parked call not restored: " + why)
		_ = store.IgnoreNotFound(s.opts.Store.DeleteOrbit(ctx, o))
		s.byeSnapshot(d)
		return false
	}
	if err != nil {
		return give("no media port", err)
	}
	c := &call{s: s, id: d.Call, epA: ep, done: make(chan struct{}), inviting: make(chan struct{}, 1), log: log}
	l, ok := s.legFromSnapshot(c, d, ep)
	if !ok {
		ep.Close()
		return give("its dialog does not parse", nil)
	}
	c.a = l
	if !s.addCall(c) {
		ep.Close()
		return false // shutting down: the records stay for the next start
	}
	s.dialogs.add(l)
	orb, err := s.lot.Adopt(o, c)
	if err != nil {
		s.dropDialog(l)
		c.end(endRestoreFailed, nil)
		return give("its code is taken here", err)
	}
	c.noteParked(orb)
	s.metrics.restored.Inc()
	log.Info().Int("relay_port", int(ep.Addr().Port())).Bool("same_port", keepPort && int(ep.Addr().Port()) == d.RelayPort).Msg("parked call restored")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ictx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		ok := c.awaitInvite(ictx)
		cancel()
		if !ok {
			return
		}
		c.holdParked(l, orb)
		c.endInvite()
		s.saveDialog(l)
	}()
	return true
}

// byeSnapshot hangs up the leg of a stored dialog nobody can carry on, and
// removes the dialog from the store.
func (s *Switch) byeSnapshot(d store.Dialog) {
	c := &call{s: s, id: d.Call, done: make(chan struct{}), log: s.log.With().Str("call_id", d.CallID).Logger()}
	l, ok := s.legFromSnapshot(c, d, nil)
	if ok {
		s.bye(l)
	}
	s.dropDialog(&leg{callID: d.CallID, localTag: d.LocalTag})
}
