package sip

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/store"
)

// This file is the consult call of an attended transfer to park (SPEC
// §11), the way desk phones park: the parker holds the call, calls the
// park address, and completes the transfer with a REFER whose Replaces
// names the one call or the other (attended.go). The switch answers that
// call itself, from one anchor with music on hold (silence for a phone
// without G.711), and ends it once the park is done, or when nothing is
// parked through it within ConsultTimeout.

// consult is what a call to the park address has of its own.
type consult struct {
	parked chan *park.Orbit // the orbit of the park completed through the call; buffered, sent once
}

// consultDone tells the consult call c that the park into o completed
// through it.
func (c *call) consultDone(o *park.Orbit) {
	select {
	case c.consult.parked <- o:
	default: // a second park through the same call: the first one counts
	}
}

// answerConsult answers an INVITE from a user to the park address: 403
// when the user's policy does not allow park, otherwise 200 with the
// switch's own SDP and music on hold.
func (s *Switch) answerConsult(req *sip.Request, tx sip.ServerTransaction, caller party) {
	pol := s.policyOf(caller.user)
	refuse := func(code int, why string) {
		s.metrics.refused.WithLabelValues("consult_" + reasonLabel(code)).Inc()
		s.logRefusal("park", req, code, pol.Identity, 0, why)
		s.reply(req, tx, code, why)
	}
	if !pol.AllowCallPark {
		refuse(sip.StatusForbidden, "Call park is not allowed by policy "+pol.Identity)
		return
	}
	var offer *media.Description // nil: a delayed offer, answered in the ACK
	if len(req.Body()) > 0 {
		d, err := media.Parse(req.Body(), mayUseSDES(req.Transport()))
		if err != nil {
			refuse(sip.StatusNotAcceptableHere, truncate(err.Error(), 80))
			return
		}
		offer = &d
	}
	c, ok := s.newConsult(req, caller)
	if !ok {
		refuse(sip.StatusServiceUnavailable, "No media ports")
		return
	}
	c.answerConsult(req, tx, offer)
}

// newConsult sets up the call of an INVITE to the park address: one leg,
// one anchor, no callee.
func (s *Switch) newConsult(req *sip.Request, caller party) (*call, bool) {
	ep, err := s.opts.Ports.Open()
	if err != nil {
		return nil, false
	}
	id := req.CallID().Value()
	c := &call{
		s: s, id: id, epA: ep, done: make(chan struct{}), inviting: make(chan struct{}, 1),
		log: s.log.With().Str("call_id", id).Logger(), startedAt: s.opts.Now(),
		consult: &consult{parked: make(chan *park.Orbit, 1)},
	}
	c.a = s.inboundLeg(c, req, caller.user, ep)
	c.from, c.to = store.Party(s.partyOf(c.a)), s.dialedParty(req.Recipient.User)
	if !s.addCall(c) {
		ep.Close()
		return nil, false
	}
	s.metrics.calls.Inc()
	s.publish(store.Event{Type: store.EventCallStarted, At: c.startedAt, CallID: id, From: c.from, To: c.to})
	return c, true
}

// answerConsult answers the consult call's INVITE: the switch's offer or
// answer sends only (music), and the music starts once the phone's codecs
// are known.
func (c *call) answerConsult(req *sip.Request, tx sip.ServerTransaction, offer *media.Description) {
	s, l := c.s, c.a
	formats := []media.Format{media.PCMU, media.PCMA, media.TelephoneEvent}
	if offer != nil {
		l.setRemoteMedia(*offer)
		formats = offerFormats(*offer)
	}
	body := l.offerSDP(formats, media.SendOnly)
	l.sent(body, formats)
	s.dialogs.add(l)
	c.mu.Lock()
	c.answeredAt = s.opts.Now()
	c.mu.Unlock()
	s.publish(store.Event{Type: store.EventCallAnswered, At: c.answeredAt, CallID: c.id, From: c.from, To: c.to})
	c.log.Info().Str("from", s.partyOf(l).User).Msg("call to the park address answered")
	s.wg.Add(1)
	go c.watchConsult()
	if !s.answer(req, tx, l, body) {
		c.log.Info().Msg("no ACK from the caller: ending call")
		c.end(endNoACK, nil)
		return
	}
	s.saveDialog(l)
	c.consultMusic()
}

// consultMusic plays music on hold to the consult call's phone, in the
// G.711 law it negotiated.
func (c *call) consultMusic() {
	l := c.a
	l.mu.Lock()
	d := l.desc // from the INVITE, or from the ACK of a delayed offer
	l.mu.Unlock()
	f, ok := musicFormat(d)
	if c.s.opts.Music == nil || !ok {
		return
	}
	stop, err := c.s.opts.Music.Attach(l.ep, f)
	if err != nil {
		c.log.Warn().Err(err).Msg("music on hold")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if isClosed(c.done) {
		stop()
		return
	}
	c.stopMusic = stop
}

// watchConsult hangs the consult call up when nothing is parked through
// it within ConsultTimeout, and releases it once a park is.
func (c *call) watchConsult() {
	s := c.s
	defer s.wg.Done()
	limit := time.NewTimer(s.opts.ConsultTimeout)
	defer limit.Stop()
	var o *park.Orbit
	select {
	case <-c.done:
		return
	case <-s.ctx.Done():
		return
	case <-limit.C:
		c.log.Info().Dur("timeout", s.opts.ConsultTimeout).Msg("nothing parked through the call to the park address: hanging up")
		c.end(endConsultTimeout, nil)
		return
	case o = <-c.consult.parked:
	}
	c.releaseConsult(o)
}

// releaseConsult ends the consult call after the park into o completed
// through it. Its leg is the parker's leg still up after the park: the
// music stops and the code is spoken (park.announce), then the switch
// hangs up. Without announcements the phone usually hangs up on the
// REFER's NOTIFY 200, otherwise the switch does after ReleaseTimeout.
func (c *call) releaseConsult(o *park.Orbit) {
	c.log.Info().Int("orbit", o.Code()).Str("policy", o.Policy()).Msg("parked through the call to the park address")
	t := time.NewTimer(c.s.opts.ReleaseTimeout)
	defer t.Stop()
	var said <-chan struct{}
	if c.s.announcer != nil {
		c.mu.Lock()
		stop := c.stopMusic
		c.stopMusic = nil
		c.mu.Unlock()
		if stop != nil {
			stop()
		}
		if pb := c.startAnnouncement(c.a, o.Code()); pb != nil {
			defer pb.Stop()
			said = pb.Done()
		}
	}
	select {
	case <-c.done:
	case <-c.s.ctx.Done():
	case <-said:
		c.log.Info().Int("orbit", o.Code()).Msg("parker heard the code on the call to the park address: sending BYE")
		c.end(endTransferred, nil)
	case <-t.C:
		c.log.Info().Msg("parker did not hang up the call to the park address: sending BYE")
		c.end(endTransferred, nil)
	}
}
