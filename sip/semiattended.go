package sip

import (
	"slices"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
)

// This file is semi-attended transfer, as desk phones offer it: Bob holds
// Alice, calls Carol, and presses Transfer while Carol's phone still
// rings. His REFER on Alice's call names, in Replaces, his own INVITE to
// the switch, an early dialog. RFC 3891 lets a UA refuse that with 481,
// and RFC 5589 §7.6 has the transferor cancel and transfer blind instead;
// a PBX, which holds both calls, can do better, and phones expect it to.
// The switch takes the ringing over for Alice: Bob's INVITE is ended
// with 487 (as if he had cancelled it, which his phone often does next),
// Carol's phone rings on, and when she answers Alice is re-INVITEd to her
// as by a blind transfer, and Bob gets NOTIFY sipfrag 200. If Carol
// declines or does not answer, Bob gets her status in the NOTIFY and
// Alice's call stays as it was (or ends, if Bob has hung up meanwhile).

// ringing is a call's caller INVITE while connect rings the callee.
type ringing struct {
	req  *sip.Request
	tx   sip.ServerTransaction
	stop func() // stops ringing the callee

	// mu orders what is sent to the caller while it rings: connect's
	// provisional responses against a takeover's 487.
	mu       sync.Mutex
	decided  bool // the ringing is over: nothing can take it over now
	left     bool // the caller cancelled, or its transaction ended
	takeover *takeover
}

// takeover is a semi-attended transfer of a ringing call: the callee who
// answers joins call to, whose transferor gets the outcome.
type takeover struct {
	to     *call
	stop   func()               // stops ringing the callee (the transferee hung up)
	result chan takeoverOutcome // buffered: connect never waits on it
}

// takeoverOutcome is how the ringing ended: the callee's answered leg
// f with its 2xx and anchor ep, which now belong to the transfer, or the
// callee's failure status (0: nobody answered in time).
type takeoverOutcome struct {
	f      *leg
	answer *sip.Response
	ep     *media.Endpoint
	status int
}

// startRinging notes the caller's INVITE of c for a takeover while its
// callee rings; stop ends the ringing.
func (c *call) startRinging(req *sip.Request, tx sip.ServerTransaction, stop func()) *ringing {
	r := &ringing{req: req, tx: tx, stop: stop}
	c.mu.Lock()
	c.invite = r
	c.mu.Unlock()
	return r
}

// relay sends a provisional response to the caller unless a takeover
// has ended its INVITE.
func (r *ringing) relay(send func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.takeover == nil {
		send()
	}
}

// callerLeft notes that the caller is gone and reports whether the
// ringing should stop: not when a takeover rings on for the transferee.
func (r *ringing) callerLeft() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = true
	return r.takeover == nil
}

// decide ends the time a takeover can come, and returns the one that
// came, if any: connect then hands the outcome over to it.
func (r *ringing) decide() *takeover {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decided = true
	return r.takeover
}

// takeOver makes t the owner of c's ringing, if c still rings for a
// caller that is still there: accept runs (the REFER's 202), then the
// caller's INVITE is answered 487, both before connect can decide.
func (c *call) takeOver(t *takeover, accept func()) bool {
	c.mu.Lock()
	r := c.invite
	c.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.decided || r.left || r.takeover != nil {
		return false
	}
	r.takeover, t.stop = t, r.stop
	accept()
	c.s.respond(r.tx, c.s.response(r.req, sip.StatusRequestTerminated, "Transferred"))
	return true
}

// handOver ends ringing call c, taken over by t, with race outcome r:
// the callee's answered fork and its anchor move to t's call, and c ends.
func (c *call) handOver(t *takeover, r raceResult) {
	out := takeoverOutcome{status: r.status}
	why := endNotAnswered
	if f := r.winner; f != nil {
		c.mu.Lock()
		out.ep, c.epB = c.epB, nil // the forks' anchor goes with the one that answered
		c.forks = slices.DeleteFunc(c.forks, func(x *leg) bool { return x == f })
		c.mu.Unlock()
		f.mu.Lock()
		f.c = t.to
		f.mu.Unlock()
		out.f, out.answer = f, r.answer
		why = endTransferred
	}
	t.result <- out
	c.log.Info().Str("into", t.to.id).Bool("answered", out.f != nil).Msg("ringing handed over to a semi-attended transfer")
	c.end(why, nil)
}

// ringingNamed finds the caller leg of a call still ringing whose INVITE
// is the early dialog r names (the switch's tag as to-tag).
func (s *Switch) ringingNamed(r replaces) *leg {
	s.mu.Lock()
	var cands []*call
	for c := range s.calls {
		if c.id == r.callID && len(cands) < 8 {
			cands = append(cands, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cands {
		c.mu.Lock()
		a, ringing := c.a, c.invite != nil && c.b == nil && c.consult == nil
		c.mu.Unlock()
		if !ringing || a == nil || a.role != roleCaller || a.callID != r.callID || a.localTag != r.toTag {
			continue
		}
		a.mu.Lock()
		ok := a.remoteTag == r.fromTag && !a.ended
		a.mu.Unlock()
		if ok {
			return a
		}
	}
	return nil
}

// semiAttended answers transferor l's REFER whose Replaces names el, its
// own INVITE still ringing: 202, and the ringing is taken over for the
// other party of l's call. Refusals come before the 202 and leave both
// calls as they were; a ringing that ended meanwhile fails with NOTIFY 481.
func (c *call) semiAttended(l, el *leg, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	refuse := func(code int, why string) {
		s.logRefusal("transfer", req, code, "", 0, why)
		s.reply(req, tx, code, why)
	}
	c2 := el.callOf()
	p := c.other(l)
	switch {
	case !sameUser(el.user, l.user):
		refuse(sip.StatusForbidden, "The dialog named is not the transferor's")
		return
	case p == nil:
		refuse(sip.StatusForbidden, "Nothing to transfer")
		return
	case !c2.ringsWithOffer():
		// The callee's 2xx would carry the offer, which only the caller
		// that has just been sent away could answer.
		refuse(sip.StatusForbidden, "The call named rings with a delayed offer")
		return
	}
	if !c.markTransferor(l) {
		refuse(sip.StatusRequestPending, "A transfer is in progress")
		return
	}
	t := &takeover{to: c, result: make(chan takeoverOutcome, 1)}
	if !c2.takeOver(t, func() { s.reply(req, tx, sip.StatusAccepted, "") }) {
		c.unmarkTransfer(l)
		c.noSuchDialog(l, req, tx)
		return
	}
	c.log.Info().Str("transferor", l.user.Name).Str("transferee", s.partyOf(p).User).
		Str("target_call_id", c2.id).Msg("semi-attended transfer: the target still rings")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.runSemiAttended(l, p, t)
	}()
}

// ringsWithOffer reports whether c rings for a caller whose INVITE
// carried an SDP offer.
func (c *call) ringsWithOffer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.invite != nil && len(c.invite.req.Body()) > 0
}

// markTransferor marks l as the transferor of c's transfer; false when
// another transfer is under way or c has ended.
func (c *call) markTransferor(l *leg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := c.xfer == nil && !isClosed(c.done)
	if ok {
		c.xfer = l
	}
	return ok
}

// runSemiAttended waits for the outcome of the ringing t took over and
// completes the transfer of transferee p with it as a blind transfer
// would; the transferee hanging up first stops the ringing.
func (c *call) runSemiAttended(l, p *leg, t *takeover) {
	trying := c.notifyTrying(l)
	var out takeoverOutcome
	select {
	case out = <-t.result:
	case <-c.done:
		t.stop()
		out = <-t.result
	}
	status := sip.StatusTemporarilyUnavailable
	switch {
	case out.f != nil:
		status = c.completeTransfer(l, p, out.f, out.answer, out.ep)
	case out.status != 0:
		status = out.status
	}
	c.concludeTransfer(l, status, trying, c.s.partyOf(p).User)
}
