package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Party identifies a participant, as park.Party does.
type Party struct {
	User    string `json:"user"`
	Display string `json:"display_name,omitempty"`
	URI     string `json:"uri,omitempty"`
}

// Binding is one registered contact of a user (RFC 3261 §10).
type Binding struct {
	User      string    `json:"user"`    // user name, lower case
	Contact   string    `json:"contact"` // URI as the device registered it
	Source    string    `json:"source"`  // host:port the REGISTER came from: where requests go (NAT)
	Transport string    `json:"transport"`
	Expires   time.Time `json:"expires"`
	CallID    string    `json:"call_id"`
	CSeq      uint32    `json:"cseq"`
	UserAgent string    `json:"user_agent,omitempty"`
	Node      string    `json:"node"` // node that holds the device's flow (its TCP connection, its NAT binding)
}

// Orbit is one parked call as every node sees it.
type Orbit struct {
	Policy         string    `json:"policy"` // identity of the parker's policy at park time, as spelled
	Code           int       `json:"code"`
	CallID         string    `json:"call_id"` // the parked party's call
	ParkedParty    Party     `json:"parked_party"`
	Parker         Party     `json:"parker"`
	ParkedAt       time.Time `json:"parked_at"`
	RingbackAt     time.Time `json:"ringback_at"`     // deadline of the current cycle
	TimeoutSeconds int       `json:"timeout_seconds"` // park timeout fixed at park time
	State          string    `json:"state"`           // "parked" or "ringing" while stored
	Owner          string    `json:"owner"`           // node holding the parked leg's media
	Ringbacks      int       `json:"ringbacks"`       // unanswered ringback cycles so far

	Revision uint64 `json:"-"` // set by the store on every read and write
}

// OrbitChange is what Orbits.WatchOrbits delivers: with Reset, Orbits is
// every orbit in the store and replaces all the receiver knew; otherwise
// the code Code of the table Policy (folded, see FoldPolicy) changed, and
// Orbit is its record now, or Gone says it was freed.
type OrbitChange struct {
	Reset  bool
	Orbits []Orbit
	Policy string
	Code   int
	Orbit  Orbit
	Gone   bool
}

// Dialog is a snapshot of one leg's dialog (RFC 3261 §12) and media anchor:
// enough for another process to re-INVITE it onto music, answer its BYE, or
// send it one.
type Dialog struct {
	CallID       string   `json:"call_id"`
	LocalTag     string   `json:"local_tag"`
	RemoteTag    string   `json:"remote_tag"`
	LocalURI     string   `json:"local_uri"` // From of our requests
	LocalName    string   `json:"local_name,omitempty"`
	RemoteURI    string   `json:"remote_uri"` // To of our requests
	RemoteName   string   `json:"remote_name,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq"`
	RemoteCSeq   uint32   `json:"remote_cseq"`
	RouteSet     []string `json:"route_set,omitempty"`
	RemoteTarget string   `json:"remote_target"` // the peer's Contact
	Dest         string   `json:"dest,omitempty"`
	Transport    string   `json:"transport"`
	LocalSDP     string   `json:"local_sdp,omitempty"`
	RemoteSDP    string   `json:"remote_sdp,omitempty"`
	RelayPort    int      `json:"relay_port"`
	Role         string   `json:"role,omitempty"` // "a": the switch is the UAS; "b": the UAC
	Call         string   `json:"call,omitempty"` // the switch's call the leg belongs to
	Parked       bool     `json:"parked,omitempty"`
	Owner        string   `json:"owner"`

	Revision uint64 `json:"-"`
}

// Node is one switch process of the cluster.
type Node struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr,omitempty"` // where other nodes reach it over SIP
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"` // its last heartbeat, by its clock
}

// EventType is what an Event reports (SPEC §10).
type EventType string

const (
	EventCallStarted      EventType = "call.started"
	EventCallAnswered     EventType = "call.answered"
	EventCallEnded        EventType = "call.ended"
	EventParked           EventType = "parked"
	EventRetrieved        EventType = "retrieved"
	EventRingbackStarted  EventType = "ringback.started"
	EventRingbackAnswered EventType = "ringback.answered"
	EventAbandoned        EventType = "abandoned"
	EventParkedHungUp     EventType = "parked.hungup"
)

// EventTypes lists every EventType.
var EventTypes = []EventType{
	EventCallStarted, EventCallAnswered, EventCallEnded, EventParked, EventRetrieved,
	EventRingbackStarted, EventRingbackAnswered, EventAbandoned, EventParkedHungUp,
}

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool {
	for _, v := range EventTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Event is one thing that happened, as GET /api/v1/events sends it.
type Event struct {
	Seq         uint64    `json:"seq,omitempty"` // position in the log, set by the store: a replay point
	Type        EventType `json:"type"`
	At          time.Time `json:"at"`
	Node        string    `json:"node,omitempty"` // node that published it, set by the store
	CallID      string    `json:"call_id,omitempty"`
	Policy      string    `json:"policy,omitempty"`
	Code        int       `json:"code,omitempty"`
	Parker      Party     `json:"parker,omitzero"`
	ParkedParty Party     `json:"parked_party,omitzero"`
	Retriever   Party     `json:"retriever,omitzero"`
	Reason      string    `json:"reason,omitempty"`
	From        Party     `json:"from,omitzero"` // call.*: the caller
	To          Party     `json:"to,omitzero"`   // call.*: who was dialed, or who answered; ringback.started: who is rung
}

// CallRecord is one call, park and retrieve included (SPEC §10).
type CallRecord struct {
	CallID    string      `json:"call_id"`
	From      string      `json:"from"`
	To        string      `json:"to"`
	Started   time.Time   `json:"started"`
	Answered  time.Time   `json:"answered,omitzero"`
	Ended     time.Time   `json:"ended"`
	EndReason string      `json:"end_reason"`
	Legs      []LegRecord `json:"legs"`
	Park      *ParkRecord `json:"park,omitempty"`
	Node      string      `json:"node,omitempty"`
}

// LegRecord is one leg of a call record.
type LegRecord struct {
	CallID   string    `json:"call_id"`
	Role     string    `json:"role"`
	Party    Party     `json:"party"`
	Started  time.Time `json:"started"`
	Answered time.Time `json:"answered,omitzero"`
	Ended    time.Time `json:"ended"`
}

// ParkRecord links a park and what ended it in one call record.
type ParkRecord struct {
	Code        int       `json:"code"`
	Policy      string    `json:"policy"`
	Parker      Party     `json:"parker"`
	ParkedAt    time.Time `json:"parked_at"`
	RetrievedAt time.Time `json:"retrieved_at,omitzero"`
	Retriever   Party     `json:"retriever,omitzero"`
	Ringbacks   int       `json:"ringbacks"`
}

// FoldPolicy is the case-insensitive key of policy identities, as in
// package policy.
func FoldPolicy(identity string) string { return strings.ToLower(identity) }

// CheckOrbitKey validates the key of an orbit.
func CheckOrbitKey(policy string, code int) error {
	if policy == "" || code <= 0 {
		return fmt.Errorf("orbit %q/%d: %w: need a policy and a positive code", policy, code, ErrInvalid)
	}
	return nil
}

// CheckDialogKey validates the key of a dialog.
func CheckDialogKey(callID, localTag string) error {
	if callID == "" || localTag == "" {
		return fmt.Errorf("dialog %q/%q: %w: need a Call-ID and a local tag", callID, localTag, ErrInvalid)
	}
	return nil
}

// LiveBindings returns the bindings of bs that have not expired at now,
// keeping their order; it may reuse bs.
func LiveBindings(bs []Binding, now time.Time) []Binding {
	out := bs[:0]
	for _, b := range bs {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// SortOrbits sorts by folded policy, then code, as ListOrbits returns them.
func SortOrbits(os []Orbit) {
	slices.SortFunc(os, func(a, b Orbit) int {
		if c := cmp.Compare(FoldPolicy(a.Policy), FoldPolicy(b.Policy)); c != 0 {
			return c
		}
		return cmp.Compare(a.Code, b.Code)
	})
}

// SortDialogs sorts by Call-ID, then local tag, as ListDialogs returns them.
func SortDialogs(ds []Dialog) {
	slices.SortFunc(ds, func(a, b Dialog) int {
		if c := cmp.Compare(a.CallID, b.CallID); c != 0 {
			return c
		}
		return cmp.Compare(a.LocalTag, b.LocalTag)
	})
}
