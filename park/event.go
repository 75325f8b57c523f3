package park

// EventKind names what happened to an orbit.
type EventKind string

const (
	EventPark               EventKind = "park"                // a call was parked
	EventRetrieve           EventKind = "retrieve"            // a retriever claimed the orbit
	EventRingback           EventKind = "ringback"            // the parker is being rung (Target)
	EventFallback           EventKind = "fallback"            // the fallback is being rung (Target)
	EventRingbackAnswered   EventKind = "ringback_answered"   // Target answered and took the call
	EventRingbackUnanswered EventKind = "ringback_unanswered" // a ringback cycle ended unanswered
	EventRepark             EventKind = "repark"              // the orbit is parked for another cycle
	EventAbandon            EventKind = "abandon"             // max_ringbacks reached: the parked party is disconnected
	EventHangup             EventKind = "hangup"              // the parked party hung up
	EventRefused            EventKind = "refused"             // a park or retrieve was refused (Reason)
)

// Reasons of EventRefused, for logs and the refusals metric.
const (
	ReasonNotAllowed  = "not_allowed" // the policy has allow_call_park false
	ReasonRangeFull   = "range_full"  // every code of the range is occupied
	ReasonNoOrbit     = "no_orbit"    // no orbit with that code in the retriever's table
	ReasonParked      = "already_parked"
	ReasonClosed      = "closed"
	ReasonUnavailable = "unavailable"  // the shared orbit table cannot be reached
	ReasonOccupied    = "occupied"     // a directed park's code is taken
	ReasonOutOfRange  = "out_of_range" // a directed park's code is outside the range
)

// Event reports one step of an orbit's life. Orbit is a snapshot taken at
// that step. For a refused park, Orbit holds the policy and the parties; for
// a refused retrieve, the policy and the code dialled.
type Event struct {
	Kind   EventKind
	Orbit  OrbitInfo
	CallID string // the parked call's ID; "" for a refusal
	Reason string // why a park or retrieve was refused
	Target string // who is rung, answered or went unanswered
	By     Party  // who dialed the code of a retrieve, claimed or refused
}

// event is the event of kind about o; it needs lot.mu.
func (o *Orbit) event(kind EventKind, target string) Event {
	return Event{Kind: kind, Orbit: o.info(), CallID: o.callID, Target: target}
}

// emit queues an event for delivery by unlock; it needs l.mu. Queuing under
// the lock records events in the order the state changed, while delivering
// them outside it lets the callback call the lot.
func (l *Lot) emit(e Event) {
	if l.onEvent == nil {
		return
	}
	l.events = append(l.events, e)
}

// unlock releases l.mu after delivering the queued events. One goroutine
// delivers at a time, so that the callback sees every event once and in
// order; a goroutine that finds another delivering leaves its events to it.
func (l *Lot) unlock() {
	for len(l.events) > 0 && !l.delivering {
		l.delivering = true
		evs := l.events
		l.events = l.spare[:0]
		l.mu.Unlock()
		for i := range evs {
			l.onEvent(evs[i])
			evs[i] = Event{} // drop references to parties for the collector
		}
		l.mu.Lock()
		l.spare = evs[:0]
		l.delivering = false
	}
	l.mu.Unlock()
}
