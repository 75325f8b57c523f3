package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/store"
)

// This file is call park as SIP sees it: a REFER to the park address parks
// the other party of the call, an INVITE to a park code retrieves it, and
// the lot's ringbacks become outbound calls to the parker.

// policyOf is the effective call park policy of a user (SPEC §2).
func (s *Switch) policyOf(u *User) policy.Policy {
	set := s.policies.Load()
	if u == nil {
		p, _ := set.Lookup(policy.GlobalIdentity)
		return p
	}
	// Groups come from the directory in force, which a reload may have
	// changed since the call began.
	if cur, ok := s.dir.Load().UserByName(u.Name); ok {
		u = cur
	}
	return set.Resolve(u.ID, u.Groups)
}

// partyOf describes the phone on the far side of leg l.
func (s *Switch) partyOf(l *leg) park.Party {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.user; u != nil {
		return s.partyOfUser(u)
	}
	return park.Party{User: l.remote.User, Display: l.remoteName, URI: l.remote.String()}
}

// partyOfUser describes user u.
func (s *Switch) partyOfUser(u *User) park.Party {
	return park.Party{User: u.Name, Display: u.DisplayName, URI: "sip:" + u.Name + "@" + s.opts.Domain}
}

// refer handles an in-dialog REFER. A transfer to the park address parks
// the other party of the call, one with Replaces is an attended transfer
// (attended.go); every refusal leaves the call as it was.
func (c *call) refer(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	rt := req.ReferTo()
	if rt == nil {
		s.logRefusal("park", req, sip.StatusBadRequest, "", 0, "no Refer-To")
		s.reply(req, tx, sip.StatusBadRequest, "Missing Refer-To")
		return
	}
	if c.transferring() {
		s.logRefusal("transfer", req, sip.StatusRequestPending, "", 0, "a transfer is in progress")
		s.reply(req, tx, sip.StatusRequestPending, "A transfer is in progress")
		return
	}
	if r, ok, err := referReplaces(rt.Address); ok {
		c.attended(l, req, tx, rt, r, err)
		return
	}
	directed, ok := s.parkTarget(rt.Address.User)
	if !ok {
		c.blindTransfer(l, req, tx, rt)
		return
	}
	c.park(l, l, nil, req, tx, directed)
}

// park parks the other party of parker leg l's call for a REFER (to the
// park address, or directed at a code) whose NOTIFYs go to leg notify: l
// itself, or the parker's consult call to the park address when the
// phone completes an attended transfer on it. consult, when set, is that
// consult call, released once the park is done.
func (c *call) park(l, notify *leg, consult *call, req *sip.Request, tx sip.ServerTransaction, directed int) {
	p, err := c.parkOther(l, directed)
	if err != nil {
		c.refuseParkAs(notify, req, tx, p.policy, directed, err)
		return
	}
	c.s.reply(req, tx, sip.StatusAccepted, "")
	c.finishPark(l, p, func() {
		c.notifyReferDone(notify)
		if consult != nil {
			consult.consultDone(p.orbit)
		}
	}, func(l *leg, o *park.Orbit) { c.announceAndRelease(l, o, c.s.opts.ReleaseTimeout) })
}

// Why parkOther refused, besides the lot's errors.
var (
	errNothingToPark = errors.New("nothing to park")
	errNotAUser      = errors.New("only users can park")
	errInvitePending = errors.New("a re-INVITE is in progress")
	errCallEnded     = errors.New("the call ended")
)

// parking is a park parkOther made.
type parking struct {
	parked *leg
	orbit  *park.Orbit
	policy string // the parker's policy; "" when refused before it was read
}

// parkOther parks the other party of l's call with l as the parker: the one
// way in for a REFER to the park address and for the DTMF park code.
// directed is the code of a directed park, 0 for any. On success the
// call's INVITE reservation is held and l is released, and finishPark
// completes the park; an error leaves the call as it was.
func (c *call) parkOther(l *leg, directed int) (parking, error) {
	s := c.s
	parked := c.other(l)
	if parked == nil {
		return parking{}, errNothingToPark
	}
	if l.user == nil {
		return parking{}, errNotAUser
	}
	// A desk phone often holds the call and transfers it at once: let the
	// hold re-INVITE finish (its ACK) rather than refuse the REFER.
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	ok := c.awaitInvite(ctx)
	cancel()
	if !ok {
		return parking{}, errInvitePending
	}
	if c.other(l) != parked {
		c.endInvite() // parked by a request that came first
		return parking{}, errNothingToPark
	}
	pol := s.policyOf(l.user)
	p := parking{parked: parked, policy: pol.Identity}
	pctx, pcancel := context.WithTimeout(s.ctx, parkStoreTimeout)
	var err error
	if directed != 0 {
		p.orbit, err = s.lot.ParkAt(pctx, pol, c, s.partyOf(parked), s.partyOf(l), directed)
	} else {
		p.orbit, err = s.lot.Park(pctx, pol, c, s.partyOf(parked), s.partyOf(l))
	}
	pcancel()
	if err != nil {
		c.endInvite()
		return p, err
	}
	if isClosed(c.done) {
		// The call ended while its code was being claimed, before the
		// lot had the orbit for end to free: free it here.
		c.endInvite()
		s.lot.Hangup(c)
		return p, errCallEnded
	}
	c.noteParked(p.orbit)
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	return p, nil
}

// finishPark completes a park of parkOther in the background: the parked
// party goes on hold with music, done runs (the REFER's NOTIFY; may be
// nil), the parker is told the code, and release lets the parker's leg go.
func (c *call) finishPark(l *leg, p parking, done func(), release func(*leg, *park.Orbit)) {
	s := c.s
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.holdParked(p.parked, p.orbit)
		c.endInvite()
		s.saveDialog(p.parked)
		s.dropDialog(l)
		if done != nil {
			done()
		}
		s.tellParker(l.user, p.orbit)
		release(l, p.orbit)
	}()
}

// refuseParkAs answers a REFER whose park parkOther refused with err, the
// call staying as it was; l is the leg its NOTIFYs go to.
func (c *call) refuseParkAs(l *leg, req *sip.Request, tx sip.ServerTransaction, identity string, directed int, err error) {
	s := c.s
	switch {
	case errors.Is(err, errNothingToPark):
		s.logRefusal("park", req, sip.StatusForbidden, "", 0, "nothing to park")
		s.reply(req, tx, sip.StatusForbidden, "Nothing to park")
	case errors.Is(err, errNotAUser):
		s.metrics.refused.WithLabelValues("park_not_allowed").Inc()
		s.logRefusal("park", req, sip.StatusForbidden, "", 0, "not a user")
		s.reply(req, tx, sip.StatusForbidden, "Only users can park")
	case errors.Is(err, errInvitePending):
		s.logRefusal("park", req, sip.StatusRequestPending, "", 0, "re-INVITE in progress")
		res := s.response(req, sip.StatusRequestPending, "")
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		s.respond(tx, res)
	case errors.Is(err, errCallEnded):
		s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "")
	case errors.Is(err, park.ErrOutOfRange):
		s.logRefusal("park", req, sip.StatusForbidden, identity, directed, park.ReasonOutOfRange)
		s.reply(req, tx, sip.StatusForbidden, fmt.Sprintf("Code %d is outside the pickup range of policy %s", directed, identity))
	case errors.Is(err, park.ErrOccupied):
		// SPEC §11: accepted, then the transfer fails as busy; the
		// call stays as it was.
		s.logRefusal("park", req, sip.StatusBusyHere, identity, directed, park.ReasonOccupied)
		s.reply(req, tx, sip.StatusAccepted, "")
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.notifyRefer(l, "SIP/2.0 486 Busy Here\r\n")
		}()
	case errors.Is(err, park.ErrNotAllowed):
		s.logRefusal("park", req, sip.StatusForbidden, identity, 0, park.ReasonNotAllowed)
		s.reply(req, tx, sip.StatusForbidden, "Call park is not allowed by policy "+identity)
	case errors.Is(err, park.ErrRangeFull):
		s.logRefusal("park", req, sip.StatusServiceUnavailable, identity, 0, park.ReasonRangeFull)
		res := s.response(req, sip.StatusServiceUnavailable, "No free park code in policy "+identity)
		res.AppendHeader(sip.NewHeader("Retry-After", "30"))
		s.respond(tx, res)
	case errors.Is(err, park.ErrUnavailable):
		s.metrics.refused.WithLabelValues("park_store_unavailable").Inc()
		c.log.Warn().Err(err).Str("policy", identity).Msg("park refused: the state store is unavailable")
		s.logRefusal("park", req, sip.StatusServiceUnavailable, identity, 0, park.ReasonUnavailable)
		res := s.response(req, sip.StatusServiceUnavailable, "Call park is unavailable")
		res.AppendHeader(sip.NewHeader("Retry-After", "5"))
		s.respond(tx, res)
	default:
		c.log.Warn().Err(err).Str("policy", identity).Msg("park failed")
		s.reply(req, tx, sip.StatusInternalServerError, "")
	}
}

// parkStoreTimeout bounds the claim of a code in the state store, which a
// REFER's 202 waits for.
const parkStoreTimeout = 2 * time.Second

// musicFormat picks the codec music on hold is sent in: the first G.711
// law the parked phone negotiated.
func musicFormat(d media.Description) (media.Format, bool) {
	for _, f := range d.Formats {
		if strings.EqualFold(f.Name, "PCMU") || strings.EqualFold(f.Name, "PCMA") {
			return f, true
		}
	}
	return media.Format{}, false
}

// offerFormats is what the switch offers a parked phone: the music codec
// and, when it spoke it, telephone-event.
func offerFormats(d media.Description) []media.Format {
	var out []media.Format
	if f, ok := musicFormat(d); ok {
		out = append(out, f)
	}
	if f, ok := d.Format("telephone-event", 8000); ok {
		out = append(out, f)
	}
	if len(out) == 0 {
		out = append(out, d.Formats...)
	}
	return out
}

// holdParked moves the parked party onto music on hold: its media is
// unbridged, it is re-INVITEd with a sendonly offer from its own anchor
// (it answers recvonly), and the music starts.
func (c *call) holdParked(p *leg, o *park.Orbit) {
	s := c.s
	p.ep.Unbridge()
	p.mu.Lock()
	d := p.desc
	p.mu.Unlock()
	formats := offerFormats(d)
	body := p.offerSDP(formats, media.SendOnly)
	req := p.newRequest(sip.INVITE, 0)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.inviteLeg(p, req)
	switch {
	case err != nil:
		c.log.Warn().Err(err).Int("orbit", o.Code()).Msg("parked party did not answer the hold re-INVITE")
	case !res.IsSuccess():
		c.log.Warn().Int("status", res.StatusCode).Int("orbit", o.Code()).Msg("parked party refused the hold re-INVITE")
	default:
		p.sent(body, formats)
		if ans, err := p.parse(res.Body()); err == nil {
			p.ep.SetRemote(ans.Addr, ans.RTCPMux) // the phone may move its media
			p.applyKeys(ans)                      // and choose a new key
		}
	}
	if s.opts.Music == nil {
		return
	}
	f, ok := musicFormat(d)
	if !ok {
		c.log.Info().Int("orbit", o.Code()).Msg("parked party speaks no G.711: no music")
		return
	}
	stop, err := s.opts.Music.Attach(p.ep, f)
	if err != nil {
		c.log.Warn().Err(err).Msg("music on hold")
		return
	}
	c.mu.Lock()
	if c.s.lot.OrbitOf(c.id) != o || isClosed(c.done) {
		c.mu.Unlock()
		stop() // retrieved or ended meanwhile
		return
	}
	c.stopMusic = stop
	c.mu.Unlock()
}

// parkedLeg is the leg of the parked party while the call is parked.
func (c *call) parkedLeg() *leg {
	if c.s.lot.OrbitOf(c.id) == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, _ := c.parkedSide()
	return p
}

// parkedSide is the one rule for which leg of a parked call is the parked
// party: the side that was not released by the park; old is the released
// side (nil for a call restored from the store). It needs c.mu.
func (c *call) parkedSide() (p, old *leg) {
	if c.a.isReleased() {
		return c.b, c.a
	}
	return c.a, c.b
}

// reinviteParked answers a parked phone's own re-INVITE (a session refresh,
// a new address) for the switch, which is its only peer now: the music
// keeps coming from the same anchor, to wherever the phone moved.
func (c *call) reinviteParked(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	offer, err := l.parse(req.Body())
	if err != nil {
		c.s.reply(req, tx, sip.StatusNotAcceptableHere, truncate(err.Error(), 80))
		return
	}
	l.mu.Lock()
	l.acked = make(chan struct{})
	if ct := req.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	}
	l.mu.Unlock()
	l.ep.SetRemote(offer.Addr, offer.RTCPMux)
	l.applyKeys(offer)
	dir := media.SendOnly
	if offer.OnHold() {
		dir = media.Inactive
	}
	formats := offerFormats(offer)
	body := l.offerSDP(formats, dir)
	l.sent(body, formats)
	if l.sendAnswer(tx, c.okWithSDP(req, l, body)) {
		c.s.saveDialog(l) // its CSeq and media moved
	}
}

// unpark stops the music for a parked call that is being picked up.
func (c *call) unpark() {
	c.mu.Lock()
	stop := c.stopMusic
	c.stopMusic = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// notifyReferDone ends the REFER's implicit subscription with the final
// state of the "transfer" (RFC 3515 §2.4.5).
func (c *call) notifyReferDone(l *leg) { c.notifyRefer(l, "SIP/2.0 200 OK\r\n") }

// notifyRefer ends the REFER's implicit subscription with frag, the
// status line of how the transfer ended.
func (c *call) notifyRefer(l *leg, frag string) {
	c.notifyReferState(l, frag, "terminated;reason=noresource")
}

// notifyReferState sends a NOTIFY of the REFER's implicit subscription
// with frag as its sipfrag and state as its Subscription-State.
func (c *call) notifyReferState(l *leg, frag, state string) {
	req := l.newRequest(sip.NOTIFY, 0)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(frag))
	ctx, cancel := context.WithTimeout(c.s.ctx, 10*time.Second)
	defer cancel()
	if res, err := c.s.do(ctx, req); err != nil || res.StatusCode >= 300 {
		c.log.Debug().Err(err).Msg("NOTIFY after park not accepted")
	}
}

// tellParker sends the park code to every registered phone of the parker
// as a SIP MESSAGE, the way Teams shows it on screen.
func (s *Switch) tellParker(u *User, o *park.Orbit) {
	pp := o.ParkedParty()
	who := pp.Display
	switch {
	case who == "":
		who = pp.User
	case pp.User != "":
		who += " (" + pp.User + ")"
	}
	text := fmt.Sprintf("Call from %s parked at %d", who, o.Code())
	for _, b := range s.contactsOf(u) {
		req := sip.NewRequest(sip.MESSAGE, *b.Contact.Clone())
		req.AppendHeader(s.via(b.Transport))
		from := &sip.FromHeader{DisplayName: "Call Park", Address: sip.Uri{Scheme: "sip", User: s.numbers.Load().ParkUser, Host: s.opts.Domain}}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{DisplayName: u.DisplayName, Address: sip.Uri{Scheme: "sip", User: u.Name, Host: s.opts.Domain}})
		cid := sip.CallIDHeader(sip.GenerateTagN(24))
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
		req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
		req.SetBody([]byte(text))
		s.addressRequest(req, b.Transport, b.dest())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			defer cancel()
			if _, err := s.do(ctx, req); err != nil {
				s.log.Debug().Err(err).Str("user", u.Name).Msg("park code MESSAGE not delivered")
			}
		}()
	}
}

// releaseParker lets the parker's phone hang up its leg, and hangs it up
// itself when the phone does not within ReleaseTimeout. The leg's media
// anchor is not needed any more.
func (c *call) releaseParker(l *leg) { c.releaseParkerAfter(l, c.s.opts.ReleaseTimeout) }

// releaseParkerAfter is releaseParker with wait in place of ReleaseTimeout.
func (c *call) releaseParkerAfter(l *leg, wait time.Duration) {
	l.ep.Close()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-l.gone:
	case <-c.s.ctx.Done():
	case <-t.C:
		l.mu.Lock()
		alive := !l.ended
		l.endLocked()
		l.mu.Unlock()
		if alive {
			c.log.Info().Msg("parker did not hang up: sending BYE")
			c.s.bye(l)
		}
	}
}

// parkTarget reads a REFER's Refer-To user: the park address (0, true),
// a park code for a directed park (the code, true; a dialable user or
// extension is never a code), or neither.
func (s *Switch) parkTarget(user string) (int, bool) {
	if strings.EqualFold(user, s.numbers.Load().ParkUser) {
		return 0, true
	}
	code, ok := s.parkCode(user)
	if !ok {
		return 0, false
	}
	if _, isUser := s.dir.Load().Dialed(user); isUser {
		return 0, false
	}
	return code, true
}

// parkCode reads a retrieve code from a dialed string (policy.ParseCode).
func (s *Switch) parkCode(dialed string) (int, bool) {
	return policy.ParseCode(dialed, s.numbers.Load().RetrievePrefix)
}

// retrieve answers an INVITE to a park code (SPEC §4 "Retrieve").
func (s *Switch) retrieve(req *sip.Request, tx sip.ServerTransaction, caller party, code int) {
	pol := s.policyOf(caller.user)
	if !pol.AllowCallPark {
		s.metrics.refused.WithLabelValues("retrieve_not_allowed").Inc()
		s.logRefusal("retrieve", req, sip.StatusForbidden, pol.Identity, code, park.ReasonNotAllowed)
		s.reply(req, tx, sip.StatusForbidden, "Call park is not allowed by policy "+pol.Identity)
		return
	}
	if s.retrieveThrottled(caller.user.Name) {
		// Dialing code after code: refused for a while, hit or miss.
		s.metrics.refused.WithLabelValues("retrieve_throttled").Inc()
		s.logRefusal("retrieve", req, sip.StatusForbidden, pol.Identity, code, "too many empty codes dialed")
		s.reply(req, tx, sip.StatusForbidden, "Too many retrieves of empty codes")
		return
	}
	offer, err := media.Parse(req.Body(), mayUseSDES(req.Transport()))
	if err != nil {
		s.logRefusal("retrieve", req, sip.StatusNotAcceptableHere, pol.Identity, code, "unusable SDP offer")
		s.reply(req, tx, sip.StatusNotAcceptableHere, truncate(err.Error(), 80))
		return
	}
	ep, err := s.opts.Ports.Open()
	if err != nil {
		s.metrics.refused.WithLabelValues("no_media_ports").Inc()
		s.logRefusal("retrieve", req, sip.StatusServiceUnavailable, pol.Identity, code, "no media ports")
		s.reply(req, tx, sip.StatusServiceUnavailable, "No media ports")
		return
	}
	by := s.partyOfUser(caller.user)
	o, err := s.lot.Retrieve(pol, code, by)
	if err != nil {
		ep.Close()
		switch {
		case errors.Is(err, park.ErrNotAllowed):
			s.logRefusal("retrieve", req, sip.StatusForbidden, pol.Identity, code, park.ReasonNotAllowed)
			s.reply(req, tx, sip.StatusForbidden, "")
		case errors.Is(err, park.ErrNoOrbit) && caller.node == "" && s.retrieveElsewhere(req, tx, caller, pol.Identity, code):
			// Parked on another node: the call goes there.
		case errors.Is(err, park.ErrNoOrbit):
			s.retrieveMissed(caller.user.Name)
			s.logRefusal("retrieve", req, sip.StatusNotFound, pol.Identity, code, park.ReasonNoOrbit)
			s.reply(req, tx, sip.StatusNotFound, "No call parked at "+strconv.Itoa(code))
		default:
			s.logRefusal("retrieve", req, sip.StatusServiceUnavailable, pol.Identity, code, err.Error())
			s.reply(req, tx, sip.StatusServiceUnavailable, "")
		}
		return
	}
	c := o.Call().(*call)
	c.noteClaimed(o, store.Party(by))
	r := s.inboundLeg(c, req, caller.user, ep)
	r.part = partRetriever
	r.setRemoteMedia(offer)
	c.log.Info().Int("orbit", code).Str("policy", o.Policy()).Str("retriever", caller.name).Msg("retrieve")
	body, p, ok := c.pickUp(r, req.Body())
	if !ok {
		ep.Close()
		s.logRefusal("retrieve", req, sip.StatusTemporarilyUnavailable, o.Policy(), code, "the parked call could not be picked up")
		s.reply(req, tx, sip.StatusTemporarilyUnavailable, "The parked call could not be picked up")
		return
	}
	out, err := r.localSDP(body, "", p)
	if err != nil {
		ep.Close()
		s.reply(req, tx, sip.StatusInternalServerError, "")
		c.end(endRetrieveFailed, nil)
		return
	}
	s.dialogs.add(r)
	if !s.answer(req, tx, r, out) {
		c.log.Info().Msg("no ACK from retriever: ending call")
		c.end(endNoACK, nil)
	}
}

// pickUp connects leg n (a retriever or an answered ringback) to the
// parked party: music stops, the parked party is re-INVITEd with an offer
// made of n's SDP, and the two anchors are bridged. It returns the parked
// party's answer for n and the parked party's leg, and false when the
// parked party could not be reached (the call is then ended).
func (c *call) pickUp(n *leg, nSDP []byte) ([]byte, *leg, bool) {
	s := c.s
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if !c.awaitInvite(ctx) {
		return nil, nil, false
	}
	defer c.endInvite()
	c.unpark()
	c.mu.Lock()
	p, old := c.parkedSide()
	c.mu.Unlock()
	body, err := p.localSDP(nSDP, media.SendRecv, n)
	if err != nil {
		c.end(endRetrieveFailed, nil)
		return nil, nil, false
	}
	req := p.newRequest(sip.INVITE, 0)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.inviteLeg(p, req)
	if err != nil || !res.IsSuccess() {
		c.log.Warn().Err(err).Msg("parked party did not accept the retrieve re-INVITE")
		c.end(endRetrieveFailed, nil)
		return nil, nil, false
	}
	answer, err := p.parse(res.Body())
	if err != nil {
		c.end(endRetrieveFailed, nil)
		return nil, nil, false
	}
	p.setRemoteMedia(answer)
	c.mu.Lock()
	if c.a == old {
		c.a = n
	} else {
		c.b = n
	}
	if old != nil { // a call restored from the store has no parker leg
		c.released = append(c.released, old)
	}
	c.eps = append(c.eps, n.ep)
	c.mu.Unlock()
	media.Bridge(p.ep, n.ep)
	s.saveDialog(p)
	s.saveDialog(n)
	return res.Body(), p, true
}

// Ring is the lot's ringback: it calls target (the parker, or the
// fallback) with the parked party's identity and display "Parked <code>".
// When target answers and the lot lets it claim the orbit, target and the
// parked party are connected.
func (s *Switch) Ring(ctx context.Context, o *park.Orbit, target string, d time.Duration, claim func() bool) park.RingResult {
	c, ok := o.Call().(*call)
	if !ok {
		return park.NoAnswer
	}
	if strings.EqualFold(target, o.Parker().User) {
		c.noteRingback(o) // a cycle, which rings the parker first
	}
	u, caller, targets := s.parkedCallTargets(ctx, target, o)
	if u == nil {
		c.log.Info().Str("target", target).Msg("ringback target is no user")
		return park.NoAnswer
	}
	if len(targets) == 0 {
		return park.NoAnswer
	}
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c.log.Info().Int("orbit", o.Code()).Str("target", u.Name).Msg("ringback")
	got, _ := s.ringParked(rctx, c, o, caller, targets, partRingback, func(park.Party) error {
		if !claim() {
			return errClaimedMeanwhile
		}
		return nil
	})
	switch got {
	case ringUnanswered:
		if ctx.Err() != nil {
			return park.Cancelled
		}
		return park.NoAnswer
	case ringLost:
		return park.Lost
	case ringGone, ringBridged:
		return park.Answered
	}
	return park.NoAnswer
}

// errClaimedMeanwhile refuses a ringback's answer: the orbit was retrieved
// while the phone rang.
var errClaimedMeanwhile = errors.New("the orbit was claimed while the phone rang")

// Abandon ends a parked call nobody picked up (SPEC §4: after max_ringbacks).
func (s *Switch) Abandon(o *park.Orbit) {
	if c, ok := o.Call().(*call); ok {
		c.log.Info().Int("orbit", o.Code()).Msg("nobody picked up the parked call: disconnecting")
		c.end(endParkAbandoned, nil)
	}
}

// parkedCallTargets finds the user dialed as name and the phones to ring
// with the call parked in o, whose parked party shows as the caller with
// the display name "Parked <code>": the user's phones on this node, else
// on another. The user is nil when name is no user.
func (s *Switch) parkedCallTargets(ctx context.Context, name string, o *park.Orbit) (*User, party, []target) {
	u, ok := s.dir.Load().Dialed(name)
	if !ok {
		if u, ok = s.userByID(name); !ok {
			return nil, party{}, nil
		}
	}
	caller := party{name: o.ParkedParty().User, display: "Parked " + strconv.Itoa(o.Code())}
	targets := s.targetsOf(u)
	if len(targets) == 0 {
		// The user's phone may be registered on another node.
		lctx, cancel := context.WithTimeout(ctx, remoteLookupTimeout)
		targets = s.remoteTargets(lctx, u, caller)
		cancel()
	}
	return u, caller, targets
}

// userByID finds a user by address of record.
func (s *Switch) userByID(id string) (*User, bool) {
	for _, u := range s.dir.Load().Users() {
		if strings.EqualFold(u.ID, id) {
			return u, true
		}
	}
	return nil, false
}

// targetsOf lists where a user's phones are, for the switch's own calls:
// those this node holds, then the static contact.
func (s *Switch) targetsOf(u *User) []target {
	return bindingTargets(s.opts.Domain, u, s.contactsOf(u))
}

// heldTargets lists the user's phones this node holds, static contacts
// left out (every node has them), for a call another node sent on.
func (s *Switch) heldTargets(u *User) []target {
	return bindingTargets(s.opts.Domain, u, s.reg.Lookup(u.Name))
}

func bindingTargets(domain string, u *User, bs []Binding) []target {
	to := sip.Uri{Scheme: "sip", User: u.Name, Host: domain}
	var ts []target
	for _, b := range bs {
		ts = append(ts, target{uri: *b.Contact.Clone(), to: to, toName: u.DisplayName, dest: b.dest(), transport: b.Transport, user: u})
	}
	return ts
}

// onParkEvent logs every change of an orbit, once, and counts it.
func (s *Switch) onParkEvent(e park.Event) {
	s.metrics.parkEvents.WithLabelValues(string(e.Kind)).Inc()
	switch e.Kind {
	case park.EventPark:
		s.metrics.parks.Inc()
	case park.EventRetrieve:
		s.metrics.retrieves.Inc()
	case park.EventRingback:
		s.metrics.ringbacks.Inc()
	case park.EventRefused:
		s.metrics.refused.WithLabelValues("park_" + e.Reason).Inc()
	}
	if e.Kind == park.EventRefused {
		return // logRefusal wrote the line, with the call
	}
	s.lampEvent(e)
	s.retrieveTo.onOrbitEvent(e)
	s.publishParkEvent(e)
	ev := s.log.Info().Str("event", string(e.Kind)).Int("orbit", e.Orbit.Code).Str("policy", e.Orbit.Policy)
	ev = strIf(ev, "parker", e.Orbit.Parker.User)
	ev = strIf(ev, "parked_party", e.Orbit.ParkedParty.User)
	ev = strIf(ev, "state", string(e.Orbit.State))
	ev = strIf(ev, "target", e.Target)
	strIf(ev, "reason", e.Reason).Msg("park")
}

// retrieveElsewhere sends a retrieve of code to the node holding that
// orbit, when it is another live node: the INVITE is forwarded there,
// marked with the retriever, and that node picks the call up, so the
// parked party's media stays where it is. It reports whether it did.
func (s *Switch) retrieveElsewhere(req *sip.Request, tx sip.ServerTransaction, caller party, identity string, code int) bool {
	if !s.clustered() {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, remoteLookupTimeout)
	o, err := s.opts.Store.GetOrbit(ctx, identity, code)
	cancel()
	if err != nil || o.Owner == s.opts.Store.NodeID() {
		return false
	}
	addr, ok := s.nodeAddr(o.Owner)
	if !ok {
		return false // its node is gone: it is being taken over
	}
	uri := sip.Uri{Scheme: "sip", User: req.Recipient.User, Host: s.opts.Domain}
	t := target{uri: uri, to: uri, toName: "Parked " + strconv.Itoa(code), dest: addr, transport: "UDP", hop: s.hopValue(caller)}
	s.log.Info().Str("call_id", req.CallID().Value()).Int("orbit", code).Str("policy", identity).Str("node", o.Owner).Msg("retrieve sent to the node holding the orbit")
	s.placeCall(req, tx, caller, []target{t}, nil)
	return true
}
