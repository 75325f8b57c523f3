package park

import (
	"context"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// Party identifies a participant for logs, the admin API and caller ID.
type Party struct {
	User    string `json:"user"`         // user name or number; the ringback target for a parker
	Display string `json:"display_name"` // display name, "" when unknown
	URI     string `json:"uri"`          // SIP URI, "" when unknown
}

// Call is the parked party's call as the SIP layer holds it; the lot never
// looks inside. CallID keys the orbit for Hangup, so it must be stable and
// unique among calls in progress.
type Call interface {
	CallID() string
}

// State is where an orbit is in its life. The last four are final: the
// orbit has left its table and its code is free.
type State string

const (
	StateParked    State = "parked"    // waiting for a retrieve or its ringback deadline
	StateRinging   State = "ringing"   // ringing the parker or the fallback; still retrievable
	StateRetrieved State = "retrieved" // claimed by a retrieve
	StateAnswered  State = "answered"  // claimed by whoever answered the ringback
	StateAbandoned State = "abandoned" // disconnected after max_ringbacks unanswered cycles
	StateHungUp    State = "hungup"    // the parked party hung up
)

// Orbit is one parked call. Its identity (code, policy, parties, call) never
// changes; its state is guarded by the lot's lock and read through methods.
type Orbit struct {
	lot      *Lot
	table    *table
	policy   string // identity of the parker's policy as it was at park time
	code     int
	call     Call
	callID   string
	parked   Party
	parker   Party
	parkedAt time.Time
	timeout  time.Duration // fixed at park time: a policy edit does not move it

	// Guarded by lot.mu.
	state      State
	ringbackAt time.Time
	ringbacks  int                // unanswered ringback cycles so far
	timer      Timer              // pending ringback deadline while parked
	gen        int                // identifies the current timer, so a stale one does nothing
	attempt    int                // identifies the current Ring call, so a stale claim loses
	cancel     context.CancelFunc // cancels the ringback in progress while ringing
	rev        uint64             // revision of the orbit's record in the shared table
}

// Code is the pickup code a retriever dials.
func (o *Orbit) Code() int { return o.code }

// Policy is the identity of the parker's effective policy at park time; the
// orbit lives in that policy's table.
func (o *Orbit) Policy() string { return o.policy }

// Call is the parked party's call as given to Park.
func (o *Orbit) Call() Call { return o.call }

// ParkedParty is the party on hold.
func (o *Orbit) ParkedParty() Party { return o.parked }

// Parker is the party who parked the call and whom the ringback calls.
func (o *Orbit) Parker() Party { return o.parker }

// ParkedAt is when the call was parked.
func (o *Orbit) ParkedAt() time.Time { return o.parkedAt }

// RingbackAt is the deadline of the current park cycle: when the orbit rings
// back, or when it started ringing.
func (o *Orbit) RingbackAt() time.Time {
	o.lot.mu.Lock()
	defer o.lot.mu.Unlock()
	return o.ringbackAt
}

// State is the orbit's current state.
func (o *Orbit) State() State {
	o.lot.mu.Lock()
	defer o.lot.mu.Unlock()
	return o.state
}

// Ringbacks is the number of unanswered ringback cycles so far.
func (o *Orbit) Ringbacks() int {
	o.lot.mu.Lock()
	defer o.lot.mu.Unlock()
	return o.ringbacks
}

// Info is a snapshot of the orbit for the admin API.
func (o *Orbit) Info() OrbitInfo {
	o.lot.mu.Lock()
	defer o.lot.mu.Unlock()
	return o.info()
}

// info needs lot.mu.
func (o *Orbit) info() OrbitInfo {
	return OrbitInfo{
		Policy:      o.policy,
		Code:        o.code,
		ParkedParty: o.parked,
		Parker:      o.parker,
		ParkedAt:    o.parkedAt,
		RingbackAt:  o.ringbackAt,
		State:       o.state,
		Node:        o.lot.Node(),
	}
}

// InfoOf is an orbit of the shared table, parked on node rec.Owner, as
// the admin API shows it.
func InfoOf(rec store.Orbit) OrbitInfo {
	return OrbitInfo{
		Policy: rec.Policy, Code: rec.Code,
		ParkedParty: Party(rec.ParkedParty), Parker: Party(rec.Parker),
		ParkedAt: rec.ParkedAt, RingbackAt: rec.RingbackAt,
		State: State(rec.State), Node: rec.Owner,
	}
}

// OrbitInfo is an orbit as GET /api/v1/orbits shows it (SPEC §7).
type OrbitInfo struct {
	Policy      string    `json:"policy"`
	Code        int       `json:"code"`
	ParkedParty Party     `json:"parked_party"`
	Parker      Party     `json:"parker"`
	ParkedAt    time.Time `json:"parked_at"`
	RingbackAt  time.Time `json:"ringback_at"`
	State       State     `json:"state"`
	Node        string    `json:"node,omitempty"` // the node holding the parked party's media
}
