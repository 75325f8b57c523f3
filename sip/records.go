package sip

import (
	"cmp"
	"slices"

	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/store"
)

// This file turns what happens to calls and orbits into the events and
// call records of SPEC §10; eventQueue carries them to the store.

// publish queues e for the store, stamped now unless it has a time; it
// never blocks.
func (s *Switch) publish(e store.Event) {
	if e.At.IsZero() {
		e.At = s.opts.Now()
	}
	s.events.event(e)
}

// userParty is the party of the user named (or numbered) name, or just the
// name when no user has it.
func (s *Switch) userParty(name string) store.Party {
	if u, ok := s.dir.Load().Dialed(name); ok {
		return store.Party{User: u.Name, Display: u.DisplayName, URI: "sip:" + u.Name + "@" + s.opts.Domain}
	}
	return store.Party{User: name}
}

// dialedParty is what a caller dialed: the number as dialed, with the
// display name of the user it reaches.
func (s *Switch) dialedParty(dialed string) store.Party {
	p := store.Party{User: dialed}
	if u, ok := s.dir.Load().Dialed(dialed); ok {
		p.Display = u.DisplayName
	}
	return p
}

// parkEventTypes maps the lot's events to the published ones; the others
// (refusals, unanswered cycles, reparks) are not events of SPEC §10.
var parkEventTypes = map[park.EventKind]store.EventType{
	park.EventPark:             store.EventParked,
	park.EventRetrieve:         store.EventRetrieved,
	park.EventRingback:         store.EventRingbackStarted,
	park.EventFallback:         store.EventRingbackStarted,
	park.EventRingbackAnswered: store.EventRingbackAnswered,
	park.EventAbandon:          store.EventAbandoned,
	park.EventHangup:           store.EventParkedHungUp,
}

// publishParkEvent publishes e when it is one of SPEC §10's.
func (s *Switch) publishParkEvent(e park.Event) {
	t, ok := parkEventTypes[e.Kind]
	if !ok {
		return
	}
	ev := store.Event{
		Type: t, CallID: e.CallID, Policy: e.Orbit.Policy, Code: e.Orbit.Code,
		Parker: store.Party(e.Orbit.Parker), ParkedParty: store.Party(e.Orbit.ParkedParty),
	}
	switch e.Kind {
	case park.EventRetrieve:
		ev.Retriever = store.Party(e.By)
	case park.EventRingback:
		ev.To, ev.Reason = s.userParty(e.Target), "parker"
	case park.EventFallback:
		ev.To, ev.Reason = s.userParty(e.Target), "fallback"
	case park.EventRingbackAnswered:
		ev.Retriever = s.userParty(e.Target)
	case park.EventAbandon:
		ev.Reason = "not picked up after max_ringbacks"
	case park.EventHangup:
		ev.Reason = "parked party hung up"
	}
	s.publish(ev)
}

// noteParked starts the park part of the call's record.
func (c *call) noteParked(o *park.Orbit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parkRecord(o)
}

// noteClaimed records who took the call parked in o: a retriever, or
// whoever answered its ringback.
func (c *call) noteClaimed(o *park.Orbit, by store.Party) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parkRecord(o)
	p.RetrievedAt, p.Retriever = c.s.opts.Now(), by
}

// noteRingback counts a ringback cycle of o that rang the parker.
func (c *call) noteRingback(o *park.Orbit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parkRecord(o).Ringbacks++
}

// parkRecord is the record of the park in o, started by whichever of the
// park and a claim racing it comes first; it needs c.mu.
func (c *call) parkRecord(o *park.Orbit) *store.ParkRecord {
	if c.parkRec == nil || c.parkOf != o {
		c.parkOf = o
		c.parkRec = &store.ParkRecord{Code: o.Code(), Policy: o.Policy(), Parker: store.Party(o.Parker()), ParkedAt: o.ParkedAt()}
	}
	return c.parkRec
}

// recordEnd publishes the end of c and appends its record; legs are every
// leg the call had.
func (s *Switch) recordEnd(c *call, why endReason, legs []*leg) {
	now := s.opts.Now()
	c.mu.Lock()
	r := store.CallRecord{
		CallID: c.id, From: c.from.User, To: c.to.User,
		Started: c.startedAt, Answered: c.answeredAt, Ended: now, EndReason: why.text,
	}
	if c.parkRec != nil {
		p := *c.parkRec
		r.Park = &p
	}
	from, to := c.from, c.to
	c.mu.Unlock()
	r.Legs = make([]store.LegRecord, 0, len(legs))
	for _, l := range legs {
		r.Legs = append(r.Legs, l.record())
	}
	slices.SortStableFunc(r.Legs, func(a, b store.LegRecord) int { return cmp.Compare(a.Started.UnixNano(), b.Started.UnixNano()) })
	s.publish(store.Event{Type: store.EventCallEnded, At: now, CallID: c.id, From: from, To: to, Reason: why.text})
	s.events.record(r)
}

// record is the leg as its call's record lists it.
func (l *leg) record() store.LegRecord {
	p := store.Party(l.s.partyOf(l))
	l.mu.Lock()
	defer l.mu.Unlock()
	return store.LegRecord{CallID: l.callID, Role: string(l.part), Party: p, Started: l.startedAt, Answered: l.answeredAt, Ended: l.endedAt}
}
