package siptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Dial calls target (a user part such as "1002", or a sip: URI) through
// Config.Server, or straight to the URI when no server is configured. It
// returns when a final response arrives: 2xx gives an established call
// (ACK sent), non-2xx a *StatusError. If ctx ends first the INVITE is
// CANCELled in the background and ctx's error returned.
func (p *Phone) Dial(ctx context.Context, target string) (*Call, error) {
	c, err := p.DialAsync(ctx, target)
	if err != nil {
		return nil, err
	}
	return waitSetup(ctx, c)
}

// DialAsync starts a call like Dial and returns it while it is still
// ringing; Wait gives the outcome and Cancel sends CANCEL. ctx bounds the
// set-up only: when it ends before an answer the INVITE is CANCELled.
func (p *Phone) DialAsync(ctx context.Context, target string) (*Call, error) {
	uri, dest, err := p.resolve(target)
	if err != nil {
		return nil, err
	}
	return p.dial(ctx, uri, dest)
}

// DialURI calls uri directly, ignoring Config.Server; use it to call another
// Phone by its Contact.
func (p *Phone) DialURI(ctx context.Context, uri string) (*Call, error) {
	c, err := p.DialURIAsync(ctx, uri)
	if err != nil {
		return nil, err
	}
	return waitSetup(ctx, c)
}

// DialURIAsync is DialURI returning while the call rings.
func (p *Phone) DialURIAsync(ctx context.Context, uri string) (*Call, error) {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		return nil, fmt.Errorf("siptest: bad URI %q: %w", uri, err)
	}
	return p.dial(ctx, u, "")
}

func waitSetup(ctx context.Context, c *Call) (*Call, error) {
	if err := c.Wait(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *Phone) dial(ctx context.Context, uri sip.Uri, dest string, extra ...sip.Header) (*Call, error) {
	c, err := p.newCall(true)
	if err != nil {
		return nil, err
	}
	c.callID = newID(12) + "@127.0.0.1"
	c.localTag = newID(8)
	c.localURI = p.aor()
	c.localName = p.cfg.DisplayName
	c.remoteURI = uriWithoutParams(uri)
	c.remoteTarget = *uri.Clone()

	offer := c.offer("sendrecv")
	if p.cfg.EditSDP != nil {
		offer = p.cfg.EditSDP(offer)
	}
	c.commitLocal(offer, "sendrecv")

	req := sip.NewRequest(sip.INVITE, uri)
	from := &sip.FromHeader{DisplayName: c.localName, Address: c.localURI, Params: sip.NewParams()}
	from.Params.Add("tag", c.localTag)
	callID := sip.CallIDHeader(c.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: c.remoteURI})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.localCSeq, MethodName: sip.INVITE})
	req.AppendHeader(&maxFwd)
	req.AppendHeader(p.contact.Clone())
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("User-Agent", userAgentName))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(offer)
	req.SetTransport(p.transport)
	if dest != "" {
		req.SetDestination(dest)
	}

	c.inviteSem <- struct{}{} // held by the INVITE transaction until it ends
	c.ownInviteOut = true
	if !p.addCall(c) {
		c.rtp.close()
		return nil, ErrClosed
	}
	if !p.goTracked(func() { c.runInvite(ctx, req) }) {
		c.end(EndClosed)
		return nil, ErrClosed
	}
	p.log.Debug().Str("call", c.callID).Str("to", uri.String()).Msg("dialing")
	return c, nil
}

func (c *Call) runInvite(ctx context.Context, req *sip.Request) {
	err := c.invite(ctx, req)
	c.mu.Lock()
	c.setupErr = err
	c.mu.Unlock()
	if err != nil {
		reason := EndFailed
		switch {
		case errors.Is(err, ErrClosed):
			reason = EndClosed
		case errors.Is(err, errAnsweredWhileCanceling):
			reason = EndLocalHangup
		case StatusCode(err) == sip.StatusRequestTerminated:
			reason = EndCanceled
		}
		c.end(reason)
		c.p.log.Debug().Err(err).Str("call", c.callID).Msg("call not established")
	}
	<-c.inviteSem
	close(c.setupDone)
}

// invite drives the INVITE client transaction: digest challenges, CANCEL
// once a provisional response allows it (RFC 3261 §9.1), and the ACK.
func (c *Call) invite(ctx context.Context, req *sip.Request) error {
	tx, err := c.p.cli.TransactionRequest(c.p.ctx, req)
	if err != nil {
		return err
	}
	iv := &inviting{c: c, req: req, tx: tx}
	defer iv.terminate()
	ctxDone, cancelCh := ctx.Done(), c.cancelCh
	for {
		var cancelRes <-chan *sip.Response
		var cancelDone <-chan struct{}
		if iv.cancelTx != nil {
			cancelRes, cancelDone = iv.cancelTx.Responses(), iv.cancelTx.Done()
		}
		select {
		case res := <-iv.tx.Responses():
			if done, err := iv.response(res); done {
				return err
			}
		case <-iv.tx.Done():
			if err := iv.tx.Err(); err != nil {
				return fmt.Errorf("siptest: INVITE: %w", err)
			}
			return errors.New("siptest: INVITE ended without a final response")
		case <-ctxDone:
			ctxDone = nil
			iv.startCanceling()
		case <-cancelCh:
			cancelCh = nil
			iv.startCanceling()
		case res := <-cancelRes:
			if !res.IsProvisional() {
				iv.cancelTx.Terminate()
				iv.cancelTx = nil
			}
		case <-cancelDone:
			iv.cancelTx = nil
		case <-iv.giveUp:
			return errors.New("siptest: no final response after CANCEL")
		case <-c.p.ctx.Done():
			return ErrClosed
		}
	}
}

// inviting is the state of an outgoing INVITE transaction.
type inviting struct {
	c           *Call
	req         *sip.Request
	tx          sip.ClientTransaction
	cancelTx    sip.ClientTransaction // the CANCEL, once sent
	canceling   bool                  // the caller gave up
	cancelSent  bool
	provisional bool // a provisional response arrived on tx
	authTries   int
	giveUp      <-chan time.Time // fires when a CANCEL brought no final response
}

func (iv *inviting) terminate() {
	iv.tx.Terminate()
	if iv.cancelTx != nil {
		iv.cancelTx.Terminate()
	}
}

// startCanceling gives up the call: CANCEL now if a provisional response
// allows it, or when one comes.
func (iv *inviting) startCanceling() {
	if iv.canceling {
		return
	}
	iv.canceling = true
	iv.giveUp = time.After(64 * sip.T1)
	if iv.provisional && !iv.cancelSent {
		iv.sendCancel()
	}
}

func (iv *inviting) sendCancel() {
	p := iv.c.p
	iv.cancelSent = true
	t, err := p.cli.TransactionRequest(p.ctx, cancelRequest(iv.req), prebuilt)
	if err != nil {
		p.log.Debug().Err(err).Msg("CANCEL failed")
		return
	}
	iv.cancelTx = t
}

// response handles a response to the INVITE and says whether the
// transaction is over, with its outcome.
func (iv *inviting) response(res *sip.Response) (bool, error) {
	c, p := iv.c, iv.c.p
	switch {
	case res.IsProvisional():
		iv.provisional = true
		if tag, _ := res.To().Params.Get("tag"); tag != "" {
			c.mu.Lock()
			if c.earlyTag == "" {
				c.earlyTag = tag
			}
			c.mu.Unlock()
		}
		if res.StatusCode == sip.StatusRinging || res.StatusCode == sip.StatusSessionInProgress {
			c.ringOnce.Do(func() { close(c.ringing) })
		}
		if iv.canceling && !iv.cancelSent {
			iv.sendCancel()
		}
		return false, nil
	case res.IsSuccess():
		c.setOwnInviteOut(false)
		if err := c.established(iv.req, res); err != nil {
			return true, err
		}
		if iv.canceling {
			// The answer crossed our CANCEL: hang up as a phone would.
			hctx, cancel := context.WithTimeout(p.ctx, closeHangupTimeout)
			_ = c.Hangup(hctx)
			cancel()
			return true, errAnsweredWhileCanceling
		}
		return true, nil
	case (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) &&
		p.cfg.Password != "" && iv.authTries < 2 && !iv.canceling:
		return iv.authenticate(res)
	default:
		c.mu.Lock()
		c.finalRes = res
		c.mu.Unlock()
		return true, newStatusError(res)
	}
}

// authenticate answers a digest challenge with a new INVITE transaction.
func (iv *inviting) authenticate(res *sip.Response) (bool, error) {
	c, p := iv.c, iv.c.p
	iv.authTries++
	// The old transaction keeps its own request to ACK retransmitted
	// challenges; the retry works on a copy.
	iv.req = iv.req.Clone()
	ntx, err := p.cli.TransactionDigestAuth(p.ctx, iv.req, res,
		sipgo.DigestAuth{Username: p.cfg.User, Password: p.cfg.Password})
	if err != nil {
		return true, err
	}
	c.mu.Lock()
	c.localCSeq = iv.req.CSeq().SeqNo
	c.mu.Unlock()
	iv.tx, iv.provisional = ntx, false
	return false, nil
}

// established turns a 2xx into the dialog (RFC 3261 §12.1.2) and ACKs it.
func (c *Call) established(req *sip.Request, res *sip.Response) error {
	c.mu.Lock()
	c.remoteTag, _ = res.To().Params.Get("tag")
	c.remoteName = res.To().DisplayName
	if ct := res.Contact(); ct != nil {
		c.remoteTarget = *ct.Address.Clone()
	} else {
		c.remoteTarget = *req.Recipient.Clone()
	}
	rs := recordRoutes(res)
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	c.routeSet = rs
	if seq := res.CSeq().SeqNo; seq > c.localCSeq {
		c.localCSeq = seq
	}
	c.finalRes = res
	c.state = stateEstablished
	c.mu.Unlock()

	if err := c.sendAck(res); err != nil {
		return fmt.Errorf("siptest: ACK: %w", err)
	}
	offer := c.LocalSDP()
	if _, err := c.applyAnswer(res.Body(), offer, "sendrecv"); err != nil {
		hctx, cancel := context.WithTimeout(c.p.ctx, closeHangupTimeout)
		_ = c.Hangup(hctx)
		cancel()
		return fmt.Errorf("siptest: unusable SDP answer: %w", err)
	}
	c.p.log.Debug().Str("call", c.callID).Msg("call established")
	return nil
}

// cancelRequest builds the CANCEL for an INVITE (RFC 3261 §9.1): same
// Request-URI, top Via, From, To, Call-ID, CSeq number and Route.
func cancelRequest(inv *sip.Request) *sip.Request {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	sip.CopyHeaders("Route", inv, req)
	req.SetBody(nil)
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	req.Laddr = inv.Laddr
	return req
}

// answer accepts an incoming INVITE: 200 OK with SDP, then the ACK.
func (p *Phone) answer(ctx context.Context, in *Incoming) (*Call, error) {
	req := in.req
	c, err := p.newCall(false)
	if err != nil {
		return nil, err
	}
	from, to := req.From(), req.To()
	c.callID = in.CallID
	c.localTag = in.toTag
	c.localURI, c.localName = *to.Address.Clone(), to.DisplayName
	c.remoteURI, c.remoteName = *from.Address.Clone(), from.DisplayName
	c.remoteTag, _ = from.Params.Get("tag")
	c.remoteTarget = *req.Contact().Address.Clone()
	c.routeSet = recordRoutes(req)
	seq := req.CSeq().SeqNo
	c.remoteCSeq, c.remoteInviteCSeq = seq, seq

	var local []byte
	late := len(req.Body()) == 0
	if late {
		local = c.offer("sendrecv")
		c.commitLocal(local, "sendrecv")
	} else {
		info, err := ParseSDP(req.Body())
		if err == nil {
			local, err = c.answerOffer(info, req.Body())
		}
		if err != nil {
			c.rtp.close()
			res := sip.NewResponseFromRequest(req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
			_ = in.tx.Respond(res)
			return nil, err
		}
	}

	c.inviteSem <- struct{}{} // no re-INVITE before the ACK
	c.state = stateEstablished
	ch := c.expectAck(seq)
	if !p.addCall(c) {
		c.rtp.close()
		return nil, ErrClosed
	}
	close(c.setupDone)

	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", local)
	res.AppendHeader(p.contact.Clone())
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if err := in.tx.Respond(res); err != nil {
		c.end(EndFailed)
		return nil, err
	}
	// A CANCEL processed before our 200 leaves the transaction completed
	// with 487 and the 200 unsent.
	if in.isCanceled() {
		c.end(EndCanceled)
		return nil, ErrCanceled
	}
	ack, err := c.waitAck(ctx, in.tx, res, ch)
	<-c.inviteSem
	if err != nil {
		c.dropAckWait(seq)
		if !c.ended() {
			hctx, cancel := context.WithTimeout(context.Background(), closeHangupTimeout)
			_ = c.Hangup(hctx)
			cancel()
		}
		c.end(EndFailed)
		return nil, err
	}
	if late {
		if _, err := c.applyAnswer(ack.Body(), local, "sendrecv"); err != nil {
			p.log.Debug().Err(err).Msg("bad SDP answer in ACK")
		}
	}
	publish(p.answered, c)
	p.log.Debug().Str("call", c.callID).Msg("call answered")
	return c, nil
}

func recordRoutes(msg sip.Message) []sip.Uri {
	var out []sip.Uri
	for _, h := range msg.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, *rr.Address.Clone())
			continue
		}
		var u sip.Uri
		params := sip.NewParams()
		if _, err := sip.ParseAddressValue(h.Value(), &u, &params); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// setLaddr pins a UDP request to the listening socket so the far end sees
// the address advertised in Via and Contact.
func (p *Phone) setLaddr(req *sip.Request) {
	if p.transport != "UDP" {
		return
	}
	req.Laddr = sip.Addr{
		IP:       net.IP(p.addr.Addr().AsSlice()),
		Port:     int(p.addr.Port()),
		Hostname: p.addr.Addr().String(),
	}
}
