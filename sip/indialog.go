package sip

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// onInDialog routes a request that carries our To tag to its leg.
func (s *Switch) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := s.dialogs.forRequest(req)
	if l == nil {
		s.log.Debug().Str("call_id", req.CallID().Value()).Str("method", string(req.Method)).Msg("no such dialog")
		s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "")
		return
	}
	if !l.checkRemoteCSeq(req) {
		s.reply(req, tx, sip.StatusInternalServerError, "CSeq out of order")
		return
	}
	c := l.callOf()
	switch req.Method {
	case sip.BYE:
		s.reply(req, tx, sip.StatusOK, "")
		l.mu.Lock()
		crossing := l.ended
		l.mu.Unlock()
		if c.byeDuringTransfer(l) {
			// The transferor left while its transfer rings: the
			// transferee stays for the outcome.
			s.dialogs.remove(l)
			return
		}
		if crossing || l.isReleased() {
			// Our BYE crossed the phone's, or the parker left after the
			// park: only this leg ends, and it ends now.
			l.markGone()
			s.dialogs.remove(l)
			return
		}
		// Debug: the "call ended" line says "bye from" this leg.
		c.log.Debug().Str("leg", l.String()).Msg("hangup")
		c.end(byeFrom(l), l)
	case sip.INVITE:
		c.reinvite(l, req, tx)
	case sip.REFER:
		c.refer(l, req, tx)
	case sip.INFO:
		c.info(l, req, tx)
	default:
		c.forward(l, req, tx)
	}
}

// onAck completes a 2xx exchange on the leg it belongs to. ACKs for non-2xx
// responses never get here: the transaction layer absorbs them.
func (s *Switch) onAck(req *sip.Request, _ sip.ServerTransaction) {
	l := s.dialogs.forRequest(req)
	if l == nil {
		s.log.Debug().Str("call_id", req.CallID().Value()).Msg("ACK for no dialog")
		return
	}
	if len(req.Body()) > 0 {
		// The answer to the offer we made in a 2xx to an offerless INVITE
		// or re-INVITE.
		if d, err := l.parse(req.Body()); err == nil {
			l.setRemoteMedia(d)
			l.mu.Lock()
			l.ackSDP = req.Body()
			l.mu.Unlock()
		}
	}
	l.mu.Lock()
	if l.acked != nil {
		select {
		case <-l.acked:
		default:
			close(l.acked)
		}
	}
	l.mu.Unlock()
}

// onUnmatchedResponse re-sends our ACK when a callee retransmits its 2xx
// (the INVITE client transaction is gone by then, RFC 3261 §13.2.2.4).
func (s *Switch) onUnmatchedResponse(res *sip.Response) {
	if !res.IsSuccess() || res.CSeq() == nil || res.CSeq().MethodName != sip.INVITE {
		return
	}
	l := s.dialogs.forResponse(res)
	if l == nil {
		return
	}
	l.mu.Lock()
	ack := l.ackReq
	l.mu.Unlock()
	if ack != nil && ack.CSeq().SeqNo == res.CSeq().SeqNo {
		if err := s.writeAck(ack); err != nil {
			s.log.Debug().Err(err).Msg("re-ACK failed")
		}
	}
}

// onStrayCancel answers a CANCEL that matches no transaction (RFC 3261 §9.2).
func (s *Switch) onStrayCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "")
}

// onOptions answers capability queries and keep-alives.
func (s *Switch) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := s.response(req, sip.StatusOK, "")
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Accept-Language", "en"))
	s.respond(tx, res)
}

// onMessage passes in-dialog MESSAGEs to the other leg; the switch offers no
// out-of-dialog instant messaging.
func (s *Switch) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.onInDialog(req, tx)
		return
	}
	res := s.response(req, sip.StatusMethodNotAllowed, "")
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	s.respond(tx, res)
}

// beginInvite reserves the call for a phone's re-INVITE: false when another
// INVITE transaction is in progress (the caller answers 491, RFC 3261
// §14.2) or the call is not answered yet.
func (c *call) beginInvite() bool {
	c.mu.Lock()
	answered := c.b != nil || c.consult != nil
	c.mu.Unlock()
	if !answered {
		return false
	}
	select {
	case c.inviting <- struct{}{}:
		return true
	default:
		return false
	}
}

// awaitInvite reserves the call for one of the switch's own re-INVITEs,
// waiting for one in progress to finish.
func (c *call) awaitInvite(ctx context.Context) bool {
	select {
	case c.inviting <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-c.done:
		return false
	}
}

func (c *call) endInvite() { <-c.inviting }

// reinvite passes a re-INVITE (hold, resume, codec change) from one leg to
// the other, rewriting SDP both ways.
func (c *call) reinvite(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	if !c.beginInvite() {
		res := s.response(req, sip.StatusRequestPending, "")
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		s.respond(tx, res)
		return
	}
	defer c.endInvite()
	peer := c.other(l)
	if peer == nil {
		if (c.parkedLeg() == l || c.consult != nil) && len(req.Body()) > 0 {
			c.reinviteParked(l, req, tx)
			return
		}
		// Released, or no offer to answer: no one to pass it to.
		s.reply(req, tx, sip.StatusRequestPending, "")
		return
	}
	l.mu.Lock()
	l.acked = make(chan struct{})
	if ct := req.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	}
	last := l.lastSDP
	l.mu.Unlock()

	if len(req.Body()) == 0 {
		// An offerless re-INVITE (session refresh): offer what we have and
		// take the answer from the ACK.
		l.sendAnswer(tx, c.okWithSDP(req, l, last))
		return
	}
	offer, err := l.parse(req.Body())
	if err != nil {
		s.reply(req, tx, sip.StatusNotAcceptableHere, truncate(err.Error(), 80))
		return
	}
	peerBody, err := peer.localSDP(req.Body(), "", l)
	if err != nil {
		s.reply(req, tx, sip.StatusNotAcceptableHere, "")
		return
	}
	l.setRemoteMedia(offer)
	out := peer.newRequest(sip.INVITE, 0)
	out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	out.SetBody(peerBody)
	res, err := c.inviteLeg(peer, out)
	if err != nil || res == nil {
		c.log.Warn().Err(err).Str("leg", peer.String()).Msg("re-INVITE got no answer")
		s.reply(req, tx, sip.StatusRequestTimeout, "")
		return
	}
	if !res.IsSuccess() {
		s.reply(req, tx, res.StatusCode, res.Reason)
		return
	}
	answer, err := peer.parse(res.Body())
	if err != nil {
		s.reply(req, tx, sip.StatusNotAcceptableHere, "")
		return
	}
	peer.setRemoteMedia(answer)
	body, err := l.localSDP(res.Body(), "", peer)
	if err != nil {
		s.reply(req, tx, sip.StatusInternalServerError, "")
		return
	}
	c.log.Info().Str("leg", l.String()).Str("direction", string(offer.Direction)).Msg("re-INVITE")
	if !l.sendAnswer(tx, c.okWithSDP(req, l, body)) {
		c.end(endNoReinviteACK, nil)
	}
}

// okWithSDP builds our 2xx on leg l carrying body.
func (c *call) okWithSDP(req *sip.Request, l *leg, body []byte) *sip.Response {
	ok := c.s.sdpResponse(req, body)
	ok.AppendHeader(c.s.contact(l.local.User, l))
	return ok
}

// inviteLeg sends a re-INVITE we built on leg l, waits for its final
// response and ACKs a 2xx.
func (c *call) inviteLeg(l *leg, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(c.s.ctx, 32*time.Second)
	defer cancel()
	tx, err := c.s.transaction(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	res, err := finalResponse(ctx, tx)
	if err != nil || !res.IsSuccess() {
		return res, err
	}
	l.mu.Lock()
	if ct := res.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	}
	l.mu.Unlock()
	ack := l.newRequest(sip.ACK, req.CSeq().SeqNo)
	ack.SetBody(nil)
	l.mu.Lock()
	l.ackReq = ack
	l.mu.Unlock()
	if err := c.s.writeAck(ack); err != nil {
		c.log.Debug().Err(err).Str("leg", l.String()).Msg("ACK failed")
	}
	return res, nil
}

// forwardHeaders are copied from a request to its counterpart on the other
// leg: they carry the meaning of INFO, UPDATE, NOTIFY and MESSAGE bodies.
var forwardHeaders = []string{"Content-Type", "Event", "Subscription-State", "Info-Package", "Content-Disposition"}

// forward passes an in-dialog request (INFO, UPDATE, NOTIFY, MESSAGE,
// OPTIONS) to the other leg and its final response back.
func (c *call) forward(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	peer := c.other(l)
	if peer == nil {
		s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "")
		return
	}
	out := peer.newRequest(req.Method, 0)
	copyForwardHeaders(out, req)
	body := req.Body()
	isSDP := len(body) > 0 && isSDPContent(req)
	if isSDP {
		d, err := l.parse(body)
		if err != nil {
			s.reply(req, tx, sip.StatusNotAcceptableHere, "")
			return
		}
		if body, err = peer.localSDP(body, "", l); err != nil {
			s.reply(req, tx, sip.StatusNotAcceptableHere, "")
			return
		}
		l.setRemoteMedia(d)
	}
	out.SetBody(body)
	ctx, cancel := context.WithTimeout(s.ctx, 32*time.Second)
	defer cancel()
	res, err := s.do(ctx, out)
	if err != nil {
		c.log.Debug().Err(err).Str("method", string(req.Method)).Str("leg", peer.String()).Msg("forward failed")
		s.reply(req, tx, sip.StatusRequestTimeout, "")
		return
	}
	back := s.response(req, res.StatusCode, res.Reason)
	if isSDP && res.IsSuccess() && len(res.Body()) > 0 {
		if d, err := peer.parse(res.Body()); err == nil {
			peer.setRemoteMedia(d)
			if b, err := l.localSDP(res.Body(), "", peer); err == nil {
				back.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
				back.SetBody(b)
			}
		}
	}
	s.respond(tx, back)
}

// copyForwardHeaders copies req's forwardHeaders to out.
func copyForwardHeaders(out, req *sip.Request) {
	for _, name := range forwardHeaders {
		for _, h := range req.GetHeaders(name) {
			out.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
}

// isSDPContent tells whether m's Content-Type is application/sdp, whatever
// its parameters and case (RFC 3261 §7.3.1, RFC 2045 §5.1).
func isSDPContent(m interface{ ContentType() *sip.ContentTypeHeader }) bool {
	ct := m.ContentType()
	if ct == nil {
		return false
	}
	mediaType, _, _ := strings.Cut(ct.Value(), ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/sdp")
}
