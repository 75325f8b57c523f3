package sip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/store"
)

// This file is "Retrieve to…" of the park board (SPEC §12): the switch
// rings a chosen user's phones for a parked call and bridges the first to
// answer with it, the way a ringback rings the parker. While they ring the
// call stays parked: its code can still be dialed, its ringback still
// fires, and whichever claims the orbit first takes the call.

// Why RetrieveTo did not start ringing.
var (
	ErrNotParkedHere = errors.New("sip: no call is parked at that code on this node")
	ErrUnknownUser   = errors.New("sip: no such user")
	ErrNoPhone       = errors.New("sip: the user has no registered phone")
	ErrRingingTo     = errors.New("sip: the parked call is already being rung to a user")
	ErrShuttingDown  = errors.New("sip: the switch is shutting down")
)

// retrieveTos are the parked calls being rung to a user now, by call ID:
// one at a time per call, so a second click does not ring a second phone.
type retrieveTos struct {
	mu      sync.Mutex
	ringing map[string]*retrieveToRing
}

type retrieveToRing struct {
	target string
	cancel context.CancelFunc
}

// start records r for callID, unless the call is already being rung.
func (rt *retrieveTos) start(callID string, r *retrieveToRing) (busyWith string, ok bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if cur := rt.ringing[callID]; cur != nil {
		return cur.target, false
	}
	if rt.ringing == nil {
		rt.ringing = map[string]*retrieveToRing{}
	}
	rt.ringing[callID] = r
	return "", true
}

// stop ends the ringing for callID, if any: its orbit is gone.
func (rt *retrieveTos) stop(callID string) {
	rt.mu.Lock()
	r := rt.ringing[callID]
	delete(rt.ringing, callID)
	rt.mu.Unlock()
	if r != nil {
		r.cancel()
	}
}

// done forgets r once its ringing is over.
func (rt *retrieveTos) done(callID string, r *retrieveToRing) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.ringing[callID] == r {
		delete(rt.ringing, callID)
	}
}

// stopAll ends every ringing, at shutdown.
func (rt *retrieveTos) stopAll() {
	rt.mu.Lock()
	rs := rt.ringing
	rt.ringing = nil
	rt.mu.Unlock()
	for _, r := range rs {
		r.cancel()
	}
}

// onOrbitEvent stops a ring whose orbit ended: retrieved, answered,
// abandoned or hung up.
func (rt *retrieveTos) onOrbitEvent(e park.Event) {
	switch e.Kind {
	case park.EventRetrieve, park.EventRingbackAnswered, park.EventAbandon, park.EventHangup:
		rt.stop(e.CallID)
	}
}

// RetrieveTo rings the phones of user (a user name, extension or id) for
// up to ring with the call parked at code in the table of the policy named
// identity, showing the parked party as the caller with the display name
// "Parked <code>", and connects the first phone to answer with it. It
// returns the user once the phones ring; how the ringing ends is logged,
// and a pickup is the orbit's retrieved event, with user as the retriever.
// Only an orbit this node holds can be rung to.
func (s *Switch) RetrieveTo(ctx context.Context, identity string, code int, user string, ring time.Duration) (User, error) {
	o := s.lot.Lookup(identity, code)
	c, ok := callOf(o)
	if !ok {
		return User{}, fmt.Errorf("%w: %d in policy %s", ErrNotParkedHere, code, identity)
	}
	u, caller, targets := s.parkedCallTargets(ctx, user, o)
	if u == nil {
		return User{}, fmt.Errorf("%w: %q", ErrUnknownUser, user)
	}
	if len(targets) == 0 {
		return User{}, fmt.Errorf("%w: %s", ErrNoPhone, u.Name)
	}
	rctx, cancel := context.WithTimeout(s.ctx, ring)
	r := &retrieveToRing{target: u.Name, cancel: cancel}
	if busy, ok := s.retrieveTo.start(c.id, r); !ok {
		cancel()
		return User{}, fmt.Errorf("%w: %s", ErrRingingTo, busy)
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		s.retrieveTo.done(c.id, r)
		cancel()
		return User{}, ErrShuttingDown
	}
	if s.lot.OrbitOf(c.id) != o {
		// Claimed or ended while the phones were looked up, before stop
		// could find this ring.
		s.retrieveTo.done(c.id, r)
		cancel()
		s.wg.Done()
		return User{}, fmt.Errorf("%w: %d in policy %s", ErrNotParkedHere, code, identity)
	}
	go func() {
		defer s.wg.Done()
		defer s.retrieveTo.done(c.id, r)
		defer cancel()
		s.ringTo(rctx, c, o, u, caller, targets)
	}()
	return *u, nil
}

// callOf is the switch's call parked in o; false for none.
func callOf(o *park.Orbit) (*call, bool) {
	if o == nil {
		return nil, false
	}
	c, ok := o.Call().(*call)
	return c, ok
}

// ringTo rings targets, u's phones, for the call parked in o until ctx
// ends; the phone that answers claims o and is bridged to the parked
// party, or gets a BYE when the orbit was claimed first.
func (s *Switch) ringTo(ctx context.Context, c *call, o *park.Orbit, u *User, caller party, targets []target) {
	log := c.log.With().Int("orbit", o.Code()).Str("policy", o.Policy()).Str("target", u.Name).Logger()
	log.Info().Int("phones", len(targets)).Msg("retrieve to: ringing")
	switch got, err := s.ringParked(ctx, c, o, caller, targets, partRetriever, func(by park.Party) error { return s.lot.Claim(o, by) }); got {
	case ringNoPort:
		log.Warn().Err(err).Msg("retrieve to: no media port")
	case ringUnanswered:
		log.Info().Msg("retrieve to: not answered; the call stays parked")
	case ringLost:
		log.Info().Err(err).Msg("retrieve to: answered too late")
	case ringBridged:
		log.Info().Msg("retrieve to: answered and connected")
	}
}

// ringResult is how ringing phones for a parked call ended.
type ringResult int

const (
	ringUnanswered ringResult = iota // nobody answered before ctx ended
	ringNoPort                       // no media port to ring with
	ringLost                         // answered, but the orbit was claimed first (or the answer was nonsense): the phone got a BYE
	ringGone                         // answered and claimed, but the parked party had gone: the phone got a BYE
	ringBridged                      // answered, claimed and bridged to the parked party
)

// ringParked rings targets for the call c parked in o, showing caller.
// The first phone to answer, as part, is bridged to the parked party when
// claim lets it have the orbit; the error is claim's, or the port's. The
// offer follows the parked party's codecs, and its SRTP (forks over TLS
// are offered it). The ringback and Retrieve to… both ring this way.
func (s *Switch) ringParked(ctx context.Context, c *call, o *park.Orbit, caller party, targets []target, part legPart, claim func(by park.Party) error) (ringResult, error) {
	c.mu.Lock()
	p, _ := c.parkedSide()
	c.mu.Unlock()
	p.mu.Lock()
	d0 := p.desc
	p.mu.Unlock()
	ep, err := s.opts.Ports.Open()
	if err != nil {
		return ringNoPort, err
	}
	w := media.NewSDPWriter(s.opts.AdvertiseIP)
	formats := offerFormats(d0)
	offerFor := func(f *leg) []byte {
		body := w.OfferKeyed(int(ep.Addr().Port()), formats, media.SendRecv, f.keying(p))
		f.sent(body, formats)
		return body
	}
	r := c.race(ctx, caller, targets, nil, w, ep, offerFor, nil)
	if r.winner == nil {
		ep.Close()
		return ringUnanswered, nil
	}
	f := r.winner
	c.dropFork(f)
	by := s.partyOf(f)
	answer, err := f.parse(r.answer.Body())
	if err == nil {
		err = claim(by)
	}
	if err != nil {
		s.bye(f)
		ep.Close()
		return ringLost, err
	}
	f.mu.Lock()
	f.part = part
	f.mu.Unlock()
	c.noteClaimed(o, store.Party(by))
	f.setRemoteMedia(answer)
	s.dialogs.add(f)
	if _, _, ok := c.pickUp(f, r.answer.Body()); !ok {
		// The parked party is gone; the lot has let go of the orbit and
		// the call ended without this leg, so hang it up here.
		s.bye(f)
		ep.Close()
		return ringGone, nil
	}
	f.mu.Lock()
	f.confirmed = true
	f.mu.Unlock()
	return ringBridged, nil
}
