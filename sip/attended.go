package sip

import (
	"context"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
)

// This file is attended transfer (SPEC §11, RFC 3891, RFC 5589 §7): a
// REFER whose Refer-To carries Replaces naming another call of the
// transferor through the switch. The transferee is re-INVITEd onto that
// call's far end, whose leg moves into the transferee's call; both of the
// transferor's legs are released. Replaces naming a call to the park
// address parks the transferee instead (consult.go).
//
// The Replaces decides, not the Refer-To's user part. Replaces naming
// the transferor's own INVITE still ringing is a semi-attended transfer
// (semiattended.go). Replaces naming no dialog the switch holds is accepted and then fails with NOTIFY sipfrag
// 481, as the transferee's INVITE with Replaces would (RFC 5589 §7.2): a
// 481 to the REFER itself would tell the phone that the call it is on is
// gone (RFC 5057). A dialog of another user is refused with 403.

// attended answers a REFER from l whose Refer-To rt carries Replaces r,
// or err when it does not parse. Every refusal leaves the calls as they
// were.
func (c *call) attended(l *leg, req *sip.Request, tx sip.ServerTransaction, rt *sip.ReferToHeader, r replaces, err error) {
	s := c.s
	refuse := func(code int, why string) {
		s.logRefusal("transfer", req, code, "", 0, why)
		s.reply(req, tx, code, why)
	}
	if err != nil {
		refuse(sip.StatusBadRequest, truncate(err.Error(), 80))
		return
	}
	if l.user == nil {
		refuse(sip.StatusForbidden, "Only users can transfer")
		return
	}
	named := s.dialogs.named(r)
	if named == nil {
		if el := s.ringingNamed(r); el != nil && c.consult == nil {
			c.semiAttended(l, el, req, tx) // the target still rings (semiattended.go)
			return
		}
		c.noSuchDialog(l, req, tx)
		return
	}
	nc := named.callOf()
	switch {
	case !sameUser(named.user, l.user):
		refuse(sip.StatusForbidden, "The dialog named is not the transferor's")
	case nc == c:
		refuse(sip.StatusForbidden, "Replaces names this call")
	case nc.transferring():
		refuse(sip.StatusRequestPending, "A transfer is in progress")
	case c.consult != nil && nc.consult != nil:
		refuse(sip.StatusForbidden, "Nothing to park")
	case c.consult != nil:
		// Sent on the call to the park address, naming the call to park.
		nc.park(named, l, c, req, tx, 0)
	case nc.consult != nil:
		directed, _ := s.parkTarget(rt.Address.User)
		c.park(l, l, nc, req, tx, directed)
	default:
		c.attendedTransfer(l, named, req, tx)
	}
}

// noSuchDialog answers a REFER whose Replaces names no dialog that can be
// replaced: accepted, then NOTIFY sipfrag 481; the call stays as it was.
func (c *call) noSuchDialog(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	s.logRefusal("transfer", req, sip.StatusCallTransactionDoesNotExists, "", 0, "Replaces names no dialog of the switch")
	s.reply(req, tx, sip.StatusAccepted, "")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.notifyRefer(l, "SIP/2.0 481 Call/Transaction Does Not Exist\r\n")
	}()
}

// attendedTransfer joins the other party of l's call to the far end of
// l2's call (both legs of the transferor).
func (c *call) attendedTransfer(l, l2 *leg, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	p := c.other(l)
	if p == nil {
		s.logRefusal("transfer", req, sip.StatusForbidden, "", 0, "nothing to transfer")
		s.reply(req, tx, sip.StatusForbidden, "Nothing to transfer")
		return
	}
	c2 := l2.callOf()
	q := c2.other(l2)
	if q == nil { // released or parked: as good as gone
		c.noSuchDialog(l, req, tx)
		return
	}
	if !c.markTransfer(l, c2, l2) {
		s.logRefusal("transfer", req, sip.StatusRequestPending, "", 0, "a transfer is in progress")
		s.reply(req, tx, sip.StatusRequestPending, "A transfer is in progress")
		return
	}
	s.reply(req, tx, sip.StatusAccepted, "")
	c.log.Info().Str("transferor", l.user.Name).Str("transferee", s.partyOf(p).User).
		Str("target", s.partyOf(q).User).Str("consult_call_id", c2.id).Msg("attended transfer")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.runAttended(l, p, c2, l2, q)
	}()
}

// markTransfer marks both calls as transferring, l's and l2's, or
// neither; false when one already is or has ended.
func (c *call) markTransfer(l *leg, c2 *call, l2 *leg) bool {
	mark := func(c *call, l *leg) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		ok := c.xfer == nil && !isClosed(c.done)
		if ok {
			c.xfer = l
		}
		return ok
	}
	if !mark(c, l) {
		return false
	}
	if !mark(c2, l2) {
		c.unmarkTransfer(l)
		return false
	}
	return true
}

// unmarkTransfer ends the transfer mark of transferor l and reports
// whether l hung up meanwhile (byeDuringTransfer, under the same lock).
func (c *call) unmarkTransfer(l *leg) (gone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.xfer == l {
		c.xfer = nil
	}
	return isClosed(l.gone)
}

// runAttended joins transferee p to q, the far end of l2's call c2, and
// reports the outcome to transferor l in NOTIFY sipfrag. On success both
// of the transferor's legs are released; on failure both calls stay as
// they were, but a call whose transferor hung up meanwhile ends.
func (c *call) runAttended(l, p *leg, c2 *call, l2, q *leg) {
	s := c.s
	status := c.joinAttended(l, p, c2, l2, q)
	gone, gone2 := isClosed(l.gone), false
	if status != sip.StatusOK {
		gone, gone2 = c.unmarkTransfer(l), c2.unmarkTransfer(l2)
	}
	if !gone && !isClosed(c.done) {
		c.notifyRefer(l, "SIP/2.0 "+strconv.Itoa(status)+" "+reason(status)+"\r\n")
	}
	if status == sip.StatusOK {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.releaseParker(l2)
		}()
		c.releaseParker(l)
		return
	}
	c.log.Info().Int("status", status).Msg("attended transfer failed: the calls stay as they were")
	if gone {
		c.end(endTransferFailed, nil)
	}
	if gone2 {
		c2.end(endTransferFailed, nil)
	}
}

// joinAttended re-INVITEs q and p toward each other, moves q into c in
// l's place and ends c2 into c. It returns 200 or the status it failed
// with.
func (c *call) joinAttended(l, p *leg, c2 *call, l2, q *leg) int {
	s := c.s
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if !c.awaitInvite(ctx) {
		return sip.StatusRequestTerminated
	}
	defer c.endInvite()
	if !c2.awaitInvite(ctx) {
		return sip.StatusRequestTerminated
	}
	defer c2.endInvite()
	if code := c.rejoin(p, q); code != 0 {
		return code
	}
	legs, ok := c.absorb(c2, l, l2, q)
	if !ok {
		return sip.StatusRequestTerminated
	}
	media.Bridge(p.ep, q.ep)
	s.saveDialog(p)
	s.saveDialog(q)
	s.dropDialog(l)
	s.dropDialog(l2)
	s.removeCall(c2)
	s.recordEnd(c2, endTransferred, legs)
	s.metrics.callsEnded.WithLabelValues(endTransferred.label).Inc()
	c2.log.Info().Str("reason", endTransferred.text).Str("into", c.id).Msg("call ended")
	q.mu.Lock()
	q.part = partTransfer // in c's record; c2's has it as it was there
	q.mu.Unlock()
	return sip.StatusOK
}

// rejoin re-INVITEs q with an offer of p's codecs on q's own anchor, then
// p with q's answer: the two phones' media then point at the anchors the
// bridge joins. It returns 0 or the status it failed with.
func (c *call) rejoin(p, q *leg) int {
	p.mu.Lock()
	formats := p.desc.Formats
	p.mu.Unlock()
	if len(formats) == 0 {
		q.mu.Lock()
		formats = q.desc.Formats
		q.mu.Unlock()
	}
	offer := q.sdp.OfferKeyed(int(q.ep.Addr().Port()), formats, media.SendRecv, q.keying(p))
	res, code := c.reinviteWith(q, offer)
	if code != 0 {
		return code
	}
	q.sent(offer, formats)
	qd, err := q.parse(res.Body())
	if err != nil {
		return sip.StatusNotAcceptableHere
	}
	q.setRemoteMedia(qd)
	body, err := p.localSDP(res.Body(), media.SendRecv, q)
	if err != nil {
		return sip.StatusNotAcceptableHere
	}
	if res, code = c.reinviteWith(p, body); code != 0 {
		return code
	}
	pd, err := p.parse(res.Body())
	if err != nil {
		return sip.StatusNotAcceptableHere
	}
	p.setRemoteMedia(pd)
	return 0
}

// reinviteWith re-INVITEs leg l with SDP body and returns its 2xx, or the
// status it failed with.
func (c *call) reinviteWith(l *leg, body []byte) (*sip.Response, int) {
	req := l.newRequest(sip.INVITE, 0)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.inviteLeg(l, req)
	switch {
	case err != nil || res == nil:
		c.log.Warn().Err(err).Str("leg", l.String()).Msg("attended transfer re-INVITE got no answer")
		return nil, sip.StatusRequestTimeout
	case !res.IsSuccess():
		c.log.Warn().Int("status", res.StatusCode).Str("leg", l.String()).Msg("attended transfer re-INVITE refused")
		return nil, res.StatusCode
	}
	return res, 0
}

// absorb ends c2 into c: q, c2's far end, takes transferor leg l's place
// in c, and l, l2 and c2's anchors and released legs become c's, so c's
// end ends them. It returns c2's legs for its record, and false when c
// has ended or c2 has (nothing then changes). Only here are two calls
// locked at once, c before c2; the transfer marks keep a second transfer
// of the same two calls from coming here the other way round.
func (c *call) absorb(c2 *call, l, l2, q *leg) (legs []*leg, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if isClosed(c.done) {
		return nil, false
	}
	c2.endOnce.Do(func() {
		c2.mu.Lock()
		defer c2.mu.Unlock()
		legs = append(append([]*leg{c2.a}, c2.released...), c2.b)
		c.released = append(append(c.released, l, l2), c2.released...)
		for _, ep := range append([]*media.Endpoint{c2.epA, c2.epB}, c2.eps...) {
			if ep != nil { // a call restored from the store has no epB
				c.eps = append(c.eps, ep)
			}
		}
		if c.a == l {
			c.a = q
		} else {
			c.b = q
		}
		c.xfer, c2.xfer = nil, nil
		c2.released, c2.eps = nil, nil
		close(c2.done)
		for _, x := range []*leg{l, l2, q} {
			x.mu.Lock()
			x.c = c
			x.released = x != q // their BYEs now end only their legs
			x.mu.Unlock()
		}
		ok = true
	})
	return legs, ok
}
