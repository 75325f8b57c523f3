package sip

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
)

// This file is the Replaces of RFC 3891: reading it, in a REFER's
// Refer-To (an attended transfer, attended.go) or as an INVITE's header,
// finding the leg it names, and an INVITE that replaces a leg of a call.

// replaces names a dialog the switch holds the way RFC 3891 §3 writes it
// for the UA holding the dialog: to-tag is that UA's own tag, from-tag the
// peer's. The switch is that UA, so to-tag is a leg's localTag whichever
// side sent the dialog's INVITE.
type replaces struct {
	callID, toTag, fromTag string
	earlyOnly              bool
}

// maxReplaces bounds a Replaces value: a Call-ID and two tags.
const maxReplaces = 512

var errBadReplaces = errors.New("malformed Replaces")

// parseReplaces reads callid;to-tag=x;from-tag=y[;early-only].
func parseReplaces(v string) (replaces, error) {
	if len(v) > maxReplaces {
		return replaces{}, fmt.Errorf("%w: %d bytes", errBadReplaces, len(v))
	}
	parts := strings.Split(v, ";")
	r := replaces{callID: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "to-tag":
			r.toTag = val
		case "from-tag":
			r.fromTag = val
		case "early-only":
			r.earlyOnly = true
		}
	}
	if r.callID == "" || r.toTag == "" || r.fromTag == "" {
		return replaces{}, fmt.Errorf("%w: it needs a Call-ID, a to-tag and a from-tag", errBadReplaces)
	}
	return r, nil
}

// referReplaces reads the Replaces header of a Refer-To URI, escaped as
// RFC 3261 §19.1.1 has URI headers; ok reports whether there is one.
func referReplaces(u sip.Uri) (r replaces, ok bool, err error) {
	for _, kv := range u.Headers {
		if !strings.EqualFold(kv.K, "Replaces") {
			continue
		}
		v, err := url.PathUnescape(kv.V)
		if err != nil {
			return replaces{}, true, fmt.Errorf("%w: %w", errBadReplaces, err)
		}
		r, err = parseReplaces(v)
		return r, true, err
	}
	return replaces{}, false, nil
}

// named finds the live, confirmed leg r names: an outbound leg has no
// peer's tag before its 2xx, and an inbound one is indexed only once
// answered, so early dialogs are never found (RFC 3891 §3 lets them be
// refused with 481).
func (d *dialogStore) named(r replaces) *leg {
	d.mu.RLock()
	l := d.legs[dialogKey{callID: r.callID, tag: r.toTag}]
	d.mu.RUnlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	ok := l.remoteTag == r.fromTag && !l.ended
	l.mu.Unlock()
	if !ok {
		return nil
	}
	return l
}

// sameUser reports whether a and b are the same user (neither nil).
func sameUser(a, b *User) bool {
	return a != nil && b != nil && strings.EqualFold(a.Name, b.Name)
}

// partyTo reports whether u is the user of one of the call's two sides:
// who may replace a leg of it.
func (c *call) partyTo(u *User) bool {
	c.mu.Lock()
	a, b := c.a, c.b
	c.mu.Unlock()
	for _, l := range []*leg{a, b} {
		if l != nil && sameUser(l.user, u) {
			return true
		}
	}
	return false
}

// inviteFeature answers a dialog-creating INVITE that is not routed as a
// call: one with Replaces, or one from a user to the park address (an
// attended park's consult call, consult.go). It reports whether it did.
func (s *Switch) inviteFeature(req *sip.Request, tx sip.ServerTransaction, caller party) bool {
	if req.GetHeader("Replaces") != nil {
		s.inviteReplaces(req, tx, caller)
		return true
	}
	if caller.user != nil && caller.node == "" && strings.EqualFold(req.Recipient.User, s.numbers.Load().ParkUser) {
		s.answerConsult(req, tx, caller)
		return true
	}
	return false
}

// inviteReplaces answers an INVITE with Replaces (RFC 3891 §3): the new
// leg takes the place of the leg named in its call, the other side is
// re-INVITEd to the new leg's media, and once the new leg has ACKed the
// leg replaced gets a BYE. The caller must be the user of one of the two
// sides of that call. Every refusal leaves the call as it was.
func (s *Switch) inviteReplaces(req *sip.Request, tx sip.ServerTransaction, caller party) {
	refuse := func(code int, why string) {
		s.metrics.refused.WithLabelValues("replaces_" + reasonLabel(code)).Inc()
		s.logRefusal("replaces", req, code, "", 0, why)
		s.reply(req, tx, code, why)
	}
	old, code, why := s.replaceable(req, caller)
	if code != 0 {
		refuse(code, why)
		return
	}
	c := old.callOf()
	offer, err := media.Parse(req.Body(), mayUseSDES(req.Transport()))
	if err != nil {
		refuse(sip.StatusNotAcceptableHere, truncate(err.Error(), 80))
		return
	}
	ep, err := s.opts.Ports.Open()
	if err != nil {
		refuse(sip.StatusServiceUnavailable, "No media ports")
		return
	}
	n := s.inboundLeg(c, req, caller.user, ep)
	n.part = partTransfer
	n.setRemoteMedia(offer)
	body, code := c.replaceLeg(old, n, req.Body())
	if code != 0 {
		ep.Close()
		refuse(code, "The call could not be taken over")
		return
	}
	c.log.Info().Str("by", caller.name).Str("leg", old.String()).Msg("leg replaced")
	s.dialogs.add(n)
	if !s.answer(req, tx, n, body) {
		c.log.Info().Msg("no ACK from the replacing phone: ending call")
		c.end(endNoACK, nil)
		return
	}
	s.saveDialog(n)
	s.hangUpReplaced(old)
}

// replaceable finds the leg an INVITE's Replaces names, or the status to
// refuse it with: 400 for a bad header, 481 for no such confirmed dialog,
// 403 when the caller is no user of that call, 486 for early-only (the
// dialog is confirmed, RFC 3891 §3), 603 for a leg no longer in a
// two-party call (parked, or released), 491 while a transfer is under
// way, 488 without an SDP offer.
func (s *Switch) replaceable(req *sip.Request, caller party) (*leg, int, string) {
	hs := req.GetHeaders("Replaces")
	if len(hs) > 1 {
		return nil, sip.StatusBadRequest, "More than one Replaces"
	}
	r, err := parseReplaces(hs[0].Value())
	if err != nil {
		return nil, sip.StatusBadRequest, truncate(err.Error(), 80)
	}
	old := s.dialogs.named(r)
	if old == nil {
		return nil, sip.StatusCallTransactionDoesNotExists, ""
	}
	c := old.callOf()
	switch {
	case caller.user == nil || !c.partyTo(caller.user):
		return nil, sip.StatusForbidden, "Not a party to that call"
	case r.earlyOnly:
		return nil, sip.StatusBusyHere, "The dialog is confirmed"
	case c.consult != nil || c.other(old) == nil:
		return nil, sip.StatusGlobalDecline, "The dialog is in no two-party call"
	case c.transferring():
		return nil, sip.StatusRequestPending, "A transfer is in progress"
	case len(req.Body()) == 0:
		return nil, sip.StatusNotAcceptableHere, "An SDP offer is needed"
	}
	return old, 0, ""
}

// replaceLeg re-INVITEs the other side of leg old with an offer made of
// new leg n's SDP, and puts n in old's place, bridged to that side. It
// returns the answer for n, or the status to refuse n with (the call then
// stays as it was).
func (c *call) replaceLeg(old, n *leg, nSDP []byte) ([]byte, int) {
	ctx, cancel := context.WithTimeout(c.s.ctx, 10*time.Second)
	ok := c.awaitInvite(ctx)
	cancel()
	if !ok {
		return nil, sip.StatusServiceUnavailable
	}
	defer c.endInvite()
	c.mu.Lock()
	busy := c.xfer != nil
	if !busy {
		c.xfer = old // no transfer or park starts meanwhile
	}
	c.mu.Unlock()
	if busy {
		return nil, sip.StatusRequestPending
	}
	body, code := c.moveTo(old, n, nSDP)
	if code != 0 {
		c.mu.Lock()
		if c.xfer == old {
			c.xfer = nil
		}
		c.mu.Unlock()
	}
	return body, code
}

// moveTo is replaceLeg once the call is reserved for it.
func (c *call) moveTo(old, n *leg, nSDP []byte) ([]byte, int) {
	peer := c.other(old)
	if peer == nil {
		return nil, sip.StatusGlobalDecline
	}
	offer, err := peer.localSDP(nSDP, "", n)
	if err != nil {
		return nil, sip.StatusNotAcceptableHere
	}
	req := peer.newRequest(sip.INVITE, 0)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	res, err := c.inviteLeg(peer, req)
	if err != nil || res == nil {
		return nil, sip.StatusRequestTimeout
	}
	if !res.IsSuccess() {
		return nil, res.StatusCode
	}
	answer, err := peer.parse(res.Body())
	if err != nil {
		return nil, sip.StatusNotAcceptableHere
	}
	peer.setRemoteMedia(answer)
	out, err := n.localSDP(res.Body(), "", peer)
	if err != nil {
		return nil, sip.StatusInternalServerError
	}
	c.mu.Lock()
	if isClosed(c.done) {
		c.mu.Unlock()
		return nil, sip.StatusCallTransactionDoesNotExists
	}
	if c.a == old {
		c.a = n
	} else {
		c.b = n
	}
	c.released = append(c.released, old)
	c.eps = append(c.eps, n.ep)
	c.xfer = nil
	old.mu.Lock()
	old.released = true // its BYE now ends only its leg
	old.mu.Unlock()
	c.mu.Unlock()
	media.Bridge(peer.ep, n.ep)
	c.s.saveDialog(peer)
	c.s.dropDialog(old)
	return out, 0
}

// hangUpReplaced ends the dialog a new one replaced (RFC 3891 §3): a BYE,
// unless the phone hung up first, and its anchor goes.
func (s *Switch) hangUpReplaced(old *leg) {
	old.mu.Lock()
	alive := !old.ended
	old.endLocked()
	old.mu.Unlock()
	old.ep.Close()
	if alive {
		s.bye(old)
	}
}

// unsupported lists the option tags of req's Require headers the switch
// does not support: all but replaces on an INVITE (RFC 3891 §6.1).
func unsupported(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			tag = strings.TrimSpace(tag)
			if tag == "" || (req.Method == sip.INVITE && strings.EqualFold(tag, "replaces")) {
				continue
			}
			if len(out) == 8 { // never reflect more than a few
				return out
			}
			out = append(out, tag)
		}
	}
	return out
}
