package sip

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
)

// This file is blind transfer (SPEC §11): a REFER to a user, an extension
// or an outside number has the switch call that target for the other party
// of the call, and bridge the two on answer. The transferor's leg is
// released as a parker's is; a failed target leaves the call as it was.

// transferring reports whether a blind transfer of the call is ringing.
func (c *call) transferring() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.xfer != nil
}

// byeDuringTransfer marks l gone when it is the transferor of a ringing
// transfer, which then decides the call; it reports whether it was.
// Checked under c.mu, against which the transfer's outcome is decided.
func (c *call) byeDuringTransfer(l *leg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.xfer != l {
		return false
	}
	c.log.Info().Str("leg", l.String()).Msg("transferor hung up while the transfer rings")
	l.markGone()
	return true
}

// partyOfLeg is the identity the phone on leg p shows when the switch
// calls out on its behalf.
func partyOfLeg(p *leg) party {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.user; u != nil {
		return party{user: u, name: u.Name, display: u.DisplayName}
	}
	return party{name: p.remote.User, display: p.remoteName}
}

// blindTransfer answers a REFER from leg l whose Refer-To is not a park
// target. The target is routed as if l's user dialed it; every refusal
// comes before the 202 and leaves the call as it was.
func (c *call) blindTransfer(l *leg, req *sip.Request, tx sip.ServerTransaction, rt *sip.ReferToHeader) {
	s := c.s
	refuse := func(code int, why string) {
		s.logRefusal("transfer", req, code, "", 0, why)
		s.reply(req, tx, code, why)
	}
	if l.user == nil {
		refuse(sip.StatusForbidden, "Only users can transfer")
		return
	}
	p := c.other(l)
	if p == nil {
		refuse(sip.StatusForbidden, "Nothing to transfer")
		return
	}
	dialed := rt.Address.User
	caller := partyOfLeg(p)
	if u, ok := s.dir.Load().Dialed(dialed); ok && caller.user != nil && strings.EqualFold(u.Name, caller.user.Name) {
		refuse(sip.StatusLoopDetected, "Transfer to the transferee itself")
		return
	}
	targets, later, code := s.routeDialed(dialed, party{user: l.user, name: l.user.Name, display: l.user.DisplayName})
	if code != 0 {
		s.metrics.refused.WithLabelValues("transfer_" + reasonLabel(code)).Inc()
		refuse(code, reason(code))
		return
	}
	ep, err := s.opts.Ports.Open()
	if err != nil {
		s.metrics.refused.WithLabelValues("no_media_ports").Inc()
		refuse(sip.StatusServiceUnavailable, "No media ports")
		return
	}
	c.mu.Lock()
	busy := c.xfer != nil || isClosed(c.done)
	if !busy {
		c.xfer = l
	}
	c.mu.Unlock()
	if busy {
		ep.Close()
		refuse(sip.StatusRequestPending, "A transfer is in progress")
		return
	}
	s.reply(req, tx, sip.StatusAccepted, "")
	c.log.Info().Str("transferor", l.user.Name).Str("transferee", caller.name).Str("target", dialed).Int("forks", len(targets)).Msg("blind transfer")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.runTransfer(l, p, caller, targets, later, ep)
	}()
}

// runTransfer rings the target for transferee p and reports the outcome to
// transferor l in NOTIFY sipfrag (100 Trying first, RFC 3515 §2.4.5).
func (c *call) runTransfer(l, p *leg, caller party, targets []target, later func(context.Context) []target, ep *media.Endpoint) {
	trying := c.notifyTrying(l)
	status := sip.StatusTemporarilyUnavailable
	r := c.ringTransferTarget(p, caller, targets, later, ep)
	switch {
	case r.winner != nil:
		status = c.completeTransfer(l, p, r.winner, r.answer, ep)
	case r.status != 0:
		status = r.status
		ep.Close()
	default:
		ep.Close() // nobody answered in time, or the call ended
	}
	c.concludeTransfer(l, status, trying, caller.name)
}

// notifyTrying sends transferor l the NOTIFY sipfrag 100 Trying of a
// transfer that rings, in the background; the channel closes once it is
// sent, before which no final NOTIFY may go.
func (c *call) notifyTrying(l *leg) <-chan struct{} {
	s := c.s
	trying := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(trying)
		c.notifyReferState(l, "SIP/2.0 100 Trying\r\n", "active;expires=60")
	}()
	return trying
}

// concludeTransfer ends transferor l's transfer of transferee (a name,
// for the log) with status: the final NOTIFY, unless l hung up meanwhile,
// and on 200 l's release; on failure the call stays as it was, or ends
// when l has hung up.
func (c *call) concludeTransfer(l *leg, status int, trying <-chan struct{}, transferee string) {
	c.mu.Lock()
	c.xfer = nil
	gone := isClosed(l.gone)
	c.mu.Unlock()
	<-trying
	if !gone && !isClosed(c.done) {
		c.notifyRefer(l, "SIP/2.0 "+strconv.Itoa(status)+" "+reason(status)+"\r\n")
	}
	if status == sip.StatusOK {
		c.log.Info().Str("transferee", transferee).Msg("transfer answered")
		c.releaseParker(l)
		return
	}
	c.log.Info().Int("status", status).Msg("transfer failed: the call stays as it was")
	if gone {
		c.end(endTransferFailed, nil) // the transferor left: nobody to go back to
	}
}

// ringTransferTarget rings the targets with an offer made of what the
// transferee's phone negotiated, on anchor ep, until one answers, all
// fail, the no-answer timeout passes or the call ends.
func (c *call) ringTransferTarget(p *leg, caller party, targets []target, later func(context.Context) []target, ep *media.Endpoint) raceResult {
	s := c.s
	p.mu.Lock()
	d := p.desc
	p.mu.Unlock()
	w := media.NewSDPWriter(s.opts.AdvertiseIP)
	offerFor := func(f *leg) []byte {
		body := w.OfferKeyed(int(ep.Addr().Port()), d.Formats, media.SendRecv, f.keying(p))
		f.sent(body, d.Formats)
		return body
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.NoAnswerTimeout)
	defer cancel()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-c.done: // the transferee hung up: stop ringing
			cancel()
		case <-ctx.Done():
		}
	}()
	return c.race(ctx, caller, targets, later, w, ep, offerFor, nil)
}

// completeTransfer connects the answered fork f to transferee p: p is
// re-INVITEd with f's SDP, f takes the place of transferor l in the call,
// and the anchors are bridged. It returns 200, or the status the transfer
// failed with (f is then hung up and the call left as it was).
func (c *call) completeTransfer(l, p, f *leg, answer *sip.Response, ep *media.Endpoint) int {
	s := c.s
	c.dropFork(f)
	fail := func(code int) int {
		s.bye(f)
		ep.Close()
		return code
	}
	fd, err := f.parse(answer.Body())
	if err != nil {
		return fail(sip.StatusNotAcceptableHere)
	}
	f.setRemoteMedia(fd)
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	ok := c.awaitInvite(ctx)
	cancel()
	if !ok {
		return fail(sip.StatusRequestTerminated)
	}
	defer c.endInvite()
	body, err := p.localSDP(answer.Body(), media.SendRecv, f)
	if err != nil {
		return fail(sip.StatusNotAcceptableHere)
	}
	req := p.newRequest(sip.INVITE, 0)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.inviteLeg(p, req)
	if err != nil || !res.IsSuccess() {
		c.log.Warn().Err(err).Msg("transferee did not accept the transfer re-INVITE")
		if res != nil {
			return fail(res.StatusCode)
		}
		return fail(sip.StatusRequestTimeout)
	}
	pd, err := p.parse(res.Body())
	if err != nil {
		return fail(sip.StatusNotAcceptableHere)
	}
	p.setRemoteMedia(pd)
	c.mu.Lock()
	if isClosed(c.done) {
		c.mu.Unlock()
		return fail(sip.StatusRequestTerminated)
	}
	if c.a == l {
		c.a = f
	} else {
		c.b = f
	}
	c.released = append(c.released, l)
	c.eps = append(c.eps, ep)
	c.xfer = nil
	l.mu.Lock()
	l.released = true // its BYE now ends only its leg
	l.mu.Unlock()
	c.mu.Unlock()
	f.mu.Lock()
	f.part = partTransfer
	f.mu.Unlock()
	s.dialogs.add(f)
	media.Bridge(p.ep, f.ep)
	s.saveDialog(p)
	s.saveDialog(f)
	s.dropDialog(l)
	return sip.StatusOK
}
