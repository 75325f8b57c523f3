package siptest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// EndReason says how a call ended.
type EndReason string

const (
	EndNone         EndReason = ""           // still active
	EndLocalHangup  EndReason = "local-bye"  // Hangup sent BYE
	EndRemoteHangup EndReason = "remote-bye" // the far end sent BYE
	EndCanceled     EndReason = "canceled"   // CANCEL before answer, either side
	EndFailed       EndReason = "failed"     // non-2xx final response or an error during set-up
	EndClosed       EndReason = "closed"     // Phone.Close
)

type callState int

const (
	stateCalling callState = iota
	stateEstablished
	stateEnded
)

// Call is one dialog of the phone, placed by Dial or taken by Answer.
type Call struct {
	p        *Phone
	outbound bool
	callID   string
	localTag string
	rtp      *rtpSession

	// inviteSem admits one INVITE transaction per dialog at a time, in
	// either direction (RFC 3261 §14.1).
	inviteSem  chan struct{}
	done       chan struct{}
	setupDone  chan struct{}
	cancelCh   chan struct{}
	cancelOnce sync.Once
	ringing    chan struct{}
	ringOnce   sync.Once

	notifies  chan *sip.Request
	infos     chan *sip.Request
	refers    chan *sip.Request
	reinvites chan *sip.Request

	mu               sync.Mutex
	state            callState
	endReason        EndReason
	setupErr         error
	localURI         sip.Uri
	localName        string
	remoteURI        sip.Uri
	remoteName       string
	remoteTag        string
	earlyTag         string // the To tag of the first provisional response with one (an early dialog)
	remoteTarget     sip.Uri
	routeSet         []sip.Uri
	localCSeq        uint32
	remoteCSeq       uint32
	remoteInviteCSeq uint32
	ownInviteOut     bool                         // the phone's INVITE awaits its final response
	acks             map[uint32]*sip.Request      // ACKs sent, for 2xx retransmissions
	ackWait          map[uint32]chan *sip.Request // 2xx sent, waiting for the ACK
	finalRes         *sip.Response                // final response to the initial INVITE
	remoteMedia      netip.AddrPort
	remoteDir        string
	localDir         string
	localHold        bool
	sendPT           uint8
	sendEventPT      int
	sdpSess, sdpVer  uint64
	lastAnswer       []byte
	lastRemoteOffer  []byte
	lastRemoteSDP    []byte
	lastLocalSDP     []byte
}

func (p *Phone) newCall(outbound bool) (*Call, error) {
	r, err := newRTPSession(p)
	if err != nil {
		return nil, err
	}
	return &Call{
		p:           p,
		outbound:    outbound,
		rtp:         r,
		inviteSem:   make(chan struct{}, 1),
		done:        make(chan struct{}),
		setupDone:   make(chan struct{}),
		cancelCh:    make(chan struct{}),
		ringing:     make(chan struct{}),
		notifies:    make(chan *sip.Request, queueSize),
		infos:       make(chan *sip.Request, queueSize),
		refers:      make(chan *sip.Request, queueSize),
		reinvites:   make(chan *sip.Request, queueSize),
		acks:        make(map[uint32]*sip.Request),
		ackWait:     make(map[uint32]chan *sip.Request),
		localCSeq:   uint32(randInt(1, 10000)),
		sendEventPT: noEventPT,
		sdpSess:     uint64(randInt(1, 1<<31)),
		sdpVer:      uint64(randInt(1, 1000)),
	}, nil
}

// CallID is the dialog's Call-ID.
func (c *Call) CallID() string { return c.callID }

// Outbound reports whether the phone placed the call.
func (c *Call) Outbound() bool { return c.outbound }

// Done is closed when the dialog ends, whichever side ended it.
func (c *Call) Done() <-chan struct{} { return c.done }

// Ringing is closed when an outbound call receives 180 or 183.
func (c *Call) Ringing() <-chan struct{} { return c.ringing }

// EndReason says how the call ended; EndNone while it is active.
func (c *Call) EndReason() EndReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

// Established reports whether the call is answered and not yet ended.
func (c *Call) Established() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateEstablished
}

// FinalResponse is the final response to an outbound call's INVITE (nil for
// inbound calls and while ringing).
func (c *Call) FinalResponse() *sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finalRes
}

// RemoteIdentity returns the far end's display name and URI as in the
// dialog's To (outbound) or From (inbound).
func (c *Call) RemoteIdentity() (display string, uri string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteName, c.remoteURI.String()
}

// RemoteMedia is where the far end wants RTP, from its latest SDP.
func (c *Call) RemoteMedia() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteMedia
}

// LocalMedia is the phone's RTP socket address for this call.
func (c *Call) LocalMedia() netip.AddrPort { return c.rtp.local }

// RemoteDirection is the direction in the far end's latest SDP.
func (c *Call) RemoteDirection() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteDir
}

// LocalDirection is the direction in the phone's latest SDP (offer or
// answer), e.g. recvonly after answering a sendonly re-INVITE.
func (c *Call) LocalDirection() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.localDir
}

// LastAnswerSDP is the far end's answer to the phone's latest accepted offer.
func (c *Call) LastAnswerSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastAnswer
}

// LastRemoteOffer is the latest offer received from the far end (the
// initial INVITE of an inbound call or any re-INVITE).
func (c *Call) LastRemoteOffer() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastRemoteOffer
}

// RemoteSDP is the latest SDP received from the far end, offer or answer.
func (c *Call) RemoteSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastRemoteSDP
}

// LocalSDP is the latest SDP the phone sent.
func (c *Call) LocalSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastLocalSDP
}

// ReInvites delivers re-INVITEs received from the far end, after the phone
// answered them.
func (c *Call) ReInvites() <-chan *sip.Request { return c.reinvites }

// Notifies delivers in-dialog NOTIFYs (each answered 200).
func (c *Call) Notifies() <-chan *sip.Request { return c.notifies }

// Infos delivers in-dialog INFOs (each answered 200).
func (c *Call) Infos() <-chan *sip.Request { return c.infos }

// Refers delivers in-dialog REFERs, whatever the phone answered.
func (c *Call) Refers() <-chan *sip.Request { return c.refers }

// RTPReceived counts valid RTP packets received on the call's socket.
func (c *Call) RTPReceived() uint64 { return c.rtp.received.Load() }

// RTPReceivedPT counts received RTP packets of one payload type.
func (c *Call) RTPReceivedPT(pt uint8) uint64 { return c.rtp.perPT[pt&0x7f].Load() }

// RTPSent counts RTP packets sent.
func (c *Call) RTPSent() uint64 { return c.rtp.sent.Load() }

// RTPSource is the source address of the latest RTP packet received.
func (c *Call) RTPSource() netip.AddrPort {
	c.rtp.mu.Lock()
	defer c.rtp.mu.Unlock()
	return c.rtp.lastSrc
}

// DTMFReceived returns the RFC 4733 digits received so far, in order.
func (c *Call) DTMFReceived() string {
	c.rtp.mu.Lock()
	defer c.rtp.mu.Unlock()
	return string(c.rtp.digits)
}

// Wait returns the outcome of an outbound call's set-up: nil once answered,
// *StatusError for a non-2xx final response. Inbound calls return nil.
func (c *Call) Wait(ctx context.Context) error {
	select {
	case <-c.setupDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setupErr
}

// Cancel CANCELs an outbound call that has not been answered and waits for
// the INVITE to end. Wait then reports the final response (normally 487).
func (c *Call) Cancel(ctx context.Context) error {
	if !c.outbound {
		return errors.New("siptest: Cancel applies to outbound calls; use Incoming.Reject")
	}
	c.cancelOnce.Do(func() { close(c.cancelCh) })
	select {
	case <-c.setupDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.setupErr == nil:
		return errors.New("siptest: call already answered")
	case errors.Is(c.setupErr, errAnsweredWhileCanceling):
		return c.setupErr
	}
	return nil
}

// Hangup sends BYE and ends the call; on a call still ringing it cancels.
// The call ends locally whatever the far end answers.
func (c *Call) Hangup(ctx context.Context) error {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch st {
	case stateCalling:
		if c.outbound {
			return c.Cancel(ctx)
		}
		return ErrNotEstablished
	case stateEnded:
		return ErrCallEnded
	}
	req, err := c.newRequest(sip.BYE)
	if err != nil {
		return err
	}
	res, err := c.do(ctx, req)
	c.end(EndLocalHangup)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return newStatusError(res)
	}
	return nil
}

// terminate is Close's per-call clean-up on the wire.
func (c *Call) terminate(ctx context.Context) {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch {
	case st == stateEstablished:
		_ = c.Hangup(ctx)
	case st == stateCalling && c.outbound:
		_ = c.Cancel(ctx)
	}
}

// Hold re-INVITEs with a=sendonly and requires a recvonly (or inactive)
// answer.
func (c *Call) Hold(ctx context.Context) error { return c.reinvite(ctx, "sendonly") }

// Resume re-INVITEs with a=sendrecv and requires a sendrecv answer.
func (c *Call) Resume(ctx context.Context) error { return c.reinvite(ctx, "sendrecv") }

// ReInvite re-INVITEs with the given direction and requires the matching
// answer direction.
func (c *Call) ReInvite(ctx context.Context, direction string) error {
	switch direction {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return c.reinvite(ctx, direction)
	}
	return fmt.Errorf("siptest: bad direction %q", direction)
}

func (c *Call) reinvite(ctx context.Context, dir string) error {
	for attempt := 0; ; attempt++ {
		retry, err := c.reinviteOnce(ctx, dir, attempt < 3)
		if !retry {
			return err
		}
		// Glare: back off as RFC 3261 §14.1 assigns by Call-ID owner,
		// leaving the slot free for the far end's INVITE meanwhile.
		wait := time.Duration(randInt(0, 2000)) * time.Millisecond
		if c.outbound {
			wait = time.Duration(randInt(2100, 4000)) * time.Millisecond
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrCallEnded
		}
	}
}

func (c *Call) reinviteOnce(ctx context.Context, dir string, mayRetry bool) (retry bool, err error) {
	select {
	case c.inviteSem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-c.done:
		return false, ErrCallEnded
	}
	defer func() { <-c.inviteSem }()
	c.setOwnInviteOut(true)
	defer c.setOwnInviteOut(false)

	offer := c.offer(dir)
	req, err := c.newRequest(sip.INVITE)
	if err != nil {
		return false, err
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.SetBody(offer)
	res, err := c.do(ctx, req)
	c.setOwnInviteOut(false)
	switch {
	case err != nil:
		return false, err
	case res.StatusCode == sip.StatusRequestPending && mayRetry:
		return true, nil
	case !res.IsSuccess():
		return false, newStatusError(res)
	}
	c.mu.Lock()
	if ct := res.Contact(); ct != nil {
		c.remoteTarget = *ct.Address.Clone()
	}
	c.mu.Unlock()
	if err := c.sendAck(res); err != nil {
		return false, err
	}
	info, err := c.applyAnswer(res.Body(), offer, dir)
	if err != nil {
		return false, err
	}
	if !answerMatches(dir, info.Direction) {
		return false, fmt.Errorf("siptest: offered %s, far end answered %s", dir, info.Direction)
	}
	return false, nil
}

func (c *Call) setOwnInviteOut(v bool) {
	c.mu.Lock()
	c.ownInviteOut = v
	c.mu.Unlock()
}

// Refer sends an in-dialog REFER (Refer-To: <target>) and returns the final
// status code; a non-2xx status is not an error.
func (c *Call) Refer(ctx context.Context, target string) (int, error) {
	req, err := c.newRequest(sip.REFER)
	if err != nil {
		return 0, err
	}
	aor := c.p.aor()
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+target+">"))
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+aor.String()+">"))
	return c.status(ctx, req)
}

// Info sends an in-dialog INFO and returns the final status code.
func (c *Call) Info(ctx context.Context, contentType string, body []byte) (int, error) {
	req, err := c.newRequest(sip.INFO)
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	return c.status(ctx, req)
}

// SendDTMF sends one digit as INFO application/dtmf-relay.
func (c *Call) SendDTMF(ctx context.Context, digit rune) (int, error) {
	if _, ok := eventCode(digit); !ok {
		return 0, fmt.Errorf("siptest: bad DTMF digit %q", digit)
	}
	body := fmt.Sprintf("Signal=%c\r\nDuration=160\r\n", digit)
	return c.Info(ctx, "application/dtmf-relay", []byte(body))
}

// Message sends an in-dialog MESSAGE (text/plain) and returns the status.
func (c *Call) Message(ctx context.Context, text string) (int, error) {
	req, err := c.newRequest(sip.MESSAGE)
	if err != nil {
		return 0, err
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte(text))
	return c.status(ctx, req)
}

func (c *Call) notifyRefer(ctx context.Context) (int, error) {
	req, err := c.newRequest(sip.NOTIFY)
	if err != nil {
		return 0, err
	}
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	req.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason=noresource"))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte("SIP/2.0 200 OK\r\n"))
	return c.status(ctx, req)
}

func (c *Call) status(ctx context.Context, req *sip.Request) (int, error) {
	res, err := c.do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// SendRTP sends n 20 ms G.711 packets (160 bytes of silence, the first
// negotiated of PCMU/PCMA) to the far end's current media address, one per
// interval (back to back when interval is 0). The address is re-read per
// packet so a re-INVITE mid-stream is followed. Direction attributes are not
// consulted: the test decides when to send.
func (c *Call) SendRTP(ctx context.Context, n int, interval time.Duration) error {
	var tick *time.Ticker
	if interval > 0 {
		tick = time.NewTicker(interval)
		defer tick.Stop()
	}
	payload := make([]byte, 160)
	for i := 0; i < n; i++ {
		if i > 0 && tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			case <-c.done:
				return ErrCallEnded
			}
		}
		if err := c.sendable(ctx); err != nil {
			return err
		}
		dst, pt, _, err := c.mediaTarget()
		if err != nil {
			return err
		}
		fill := byte(0xFF) // PCMU silence
		if pt == ptPCMA {
			fill = 0xD5
		}
		for j := range payload {
			payload[j] = fill
		}
		h := c.rtp.nextHeader(pt, 0, false, false, 160)
		if err := c.rtp.write(dst, h, payload); err != nil {
			if c.ended() {
				return ErrCallEnded
			}
			return err
		}
	}
	return nil
}

// SendRTPEvent sends one RFC 4733 telephone-event (digit 0-9, *, #, A-D):
// three 20 ms updates then three end packets, all with one timestamp.
func (c *Call) SendRTPEvent(ctx context.Context, digit rune) error {
	code, ok := eventCode(digit)
	if !ok {
		return fmt.Errorf("siptest: bad DTMF digit %q", digit)
	}
	if err := c.sendable(ctx); err != nil {
		return err
	}
	dst, _, evPT, err := c.mediaTarget()
	if err != nil {
		return err
	}
	if evPT < 0 {
		return errors.New("siptest: far end did not negotiate telephone-event")
	}
	ts := c.rtp.clock()
	durations := []uint16{160, 320, 480, 640, 640, 640}
	for i, d := range durations {
		if i > 0 {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			case <-c.done:
				return ErrCallEnded
			}
		}
		flags := byte(10) // volume -10 dBm0
		if i >= 3 {
			flags |= 0x80
		}
		h := c.rtp.nextHeader(uint8(evPT), ts, true, i == 0, 0)
		if err := c.rtp.write(dst, h, []byte{code, flags, byte(d >> 8), byte(d)}); err != nil {
			return err
		}
	}
	c.rtp.advance(640)
	return nil
}

func (c *Call) sendable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.ended() {
		return ErrCallEnded
	}
	return nil
}

func (c *Call) mediaTarget() (netip.AddrPort, uint8, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dst := c.remoteMedia
	if !dst.IsValid() || dst.Port() == 0 || dst.Addr().IsUnspecified() {
		return dst, 0, noEventPT, ErrNoRemoteMedia
	}
	return dst, c.sendPT, c.sendEventPT, nil
}

func (c *Call) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// end finishes the dialog once: state, media socket, phone's dialog map.
func (c *Call) end(reason EndReason) {
	c.mu.Lock()
	if c.state == stateEnded {
		c.mu.Unlock()
		return
	}
	c.state = stateEnded
	c.endReason = reason
	c.mu.Unlock()
	c.rtp.close()
	c.p.forget(c)
	close(c.done)
}

func (c *Call) noteRemoteCSeq(seq uint32) {
	c.mu.Lock()
	// Handlers run concurrently, so requests can be seen out of order:
	// keep the highest, reject nothing here.
	if seq > c.remoteCSeq {
		c.remoteCSeq = seq
	}
	c.mu.Unlock()
}

// newRequest builds an in-dialog request with the next local CSeq.
func (c *Call) newRequest(method sip.RequestMethod) (*sip.Request, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateCalling:
		return nil, ErrNotEstablished
	case stateEnded:
		return nil, ErrCallEnded
	}
	c.localCSeq++
	return c.buildRequestLocked(method, c.localCSeq), nil
}

// buildRequestLocked follows RFC 3261 §12.2.1.1 with a loose-routing route
// set: Request-URI is the remote target, Route the route set.
func (c *Call) buildRequestLocked(method sip.RequestMethod, seq uint32) *sip.Request {
	req := sip.NewRequest(method, *c.remoteTarget.Clone())
	from := &sip.FromHeader{DisplayName: c.localName, Address: *c.localURI.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", c.localTag)
	to := &sip.ToHeader{DisplayName: c.remoteName, Address: *c.remoteURI.Clone(), Params: sip.NewParams()}
	if c.remoteTag != "" {
		to.Params.Add("tag", c.remoteTag)
	}
	callID := sip.CallIDHeader(c.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&maxFwd)
	for _, r := range c.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	if method != sip.ACK {
		req.AppendHeader(c.p.contact.Clone())
	}
	req.AppendHeader(sip.NewHeader("User-Agent", userAgentName))
	req.SetTransport(c.p.transport)
	c.p.setLaddr(req)
	return req
}

// do runs a non-ACK in-dialog request to its final response, answering one
// digest challenge with a fresh CSeq.
func (c *Call) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	p := c.p
	if p.ctx.Err() != nil {
		return nil, ErrClosed
	}
	tx, err := p.cli.TransactionRequest(ctx, req, prebuilt)
	if err != nil {
		return nil, err
	}
	res, err := finalResponse(ctx, tx, req.Method)
	if err != nil || p.cfg.Password == "" ||
		(res.StatusCode != sip.StatusUnauthorized && res.StatusCode != sip.StatusProxyAuthRequired) {
		return res, err
	}
	req = req.Clone()
	c.mu.Lock()
	c.localCSeq++
	req.CSeq().SeqNo = c.localCSeq - 1 // TransactionDigestAuth adds one
	c.mu.Unlock()
	tx, err = p.cli.TransactionDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.User, Password: p.cfg.Password})
	if err != nil {
		return nil, err
	}
	return finalResponse(ctx, tx, req.Method)
}

func finalResponse(ctx context.Context, tx sip.ClientTransaction, method sip.RequestMethod) (*sip.Response, error) {
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, fmt.Errorf("siptest: %s: %w", method, err)
			}
			return nil, fmt.Errorf("siptest: %s: transaction ended without response", method)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// sendAck ACKs a 2xx to one of the phone's INVITEs and keeps the ACK so
// retransmissions of that 2xx get the same ACK.
func (c *Call) sendAck(res *sip.Response) error {
	if c.p.ctx.Err() != nil {
		return ErrClosed
	}
	seq := res.CSeq().SeqNo
	c.mu.Lock()
	ack := c.buildRequestLocked(sip.ACK, seq)
	c.mu.Unlock()
	if err := c.p.cli.WriteRequest(ack, prebuilt); err != nil {
		return err
	}
	c.mu.Lock()
	c.acks[seq] = ack.Clone()
	c.mu.Unlock()
	return nil
}

func (c *Call) retransmitAck(res *sip.Response) {
	tag, _ := res.To().Params.Get("tag")
	seq := res.CSeq().SeqNo
	c.mu.Lock()
	if c.state != stateEstablished || tag != c.remoteTag {
		c.mu.Unlock()
		return
	}
	ack := c.acks[seq]
	if ack != nil {
		ack = ack.Clone()
	} else {
		// A 2xx whose waiter gave up (context expired): still ACK it so
		// the far end stops retransmitting.
		ack = c.buildRequestLocked(sip.ACK, seq)
	}
	c.mu.Unlock()
	if err := c.p.cli.WriteRequest(ack, prebuilt); err != nil {
		c.p.log.Debug().Err(err).Msg("ACK retransmission failed")
	}
}

// expectAck registers interest in the ACK for a 2xx the phone is sending.
func (c *Call) expectAck(seq uint32) chan *sip.Request {
	ch := make(chan *sip.Request, 1)
	c.mu.Lock()
	c.ackWait[seq] = ch
	c.mu.Unlock()
	return ch
}

func (c *Call) dropAckWait(seq uint32) {
	c.mu.Lock()
	delete(c.ackWait, seq)
	c.mu.Unlock()
}

func (c *Call) onAck(req *sip.Request) {
	seq := req.CSeq().SeqNo
	c.mu.Lock()
	ch := c.ackWait[seq]
	delete(c.ackWait, seq)
	c.mu.Unlock()
	if ch != nil {
		ch <- req
	}
}

// waitAck retransmits a 2xx over UDP (T1 doubling to T2) until its ACK
// arrives, for at most 64*T1 (RFC 3261 §13.3.1.4).
func (c *Call) waitAck(ctx context.Context, tx sip.ServerTransaction, res *sip.Response, ch chan *sip.Request) (*sip.Request, error) {
	giveUp := time.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	var tick <-chan time.Time
	if c.p.transport == "UDP" {
		tick = retransmit.C
	}
	for {
		select {
		case ack := <-ch:
			return ack, nil
		case <-tick:
			if err := tx.Respond(res); err != nil {
				c.p.log.Debug().Err(err).Msg("2xx retransmission failed")
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		case <-giveUp.C:
			return nil, errors.New("siptest: no ACK for 2xx")
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.p.ctx.Done():
			return nil, ErrClosed
		case <-c.done:
			return nil, ErrCallEnded
		}
	}
}

// onReInvite answers a re-INVITE from the far end like a desk phone: a
// sendonly offer gets recvonly, the media address follows the offer.
func (c *Call) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	p := c.p
	if !c.acquireForReInvite() {
		p.reply(tx, req, sip.StatusRequestPending, nil)
		return
	}
	defer func() { <-c.inviteSem }()

	seq := req.CSeq().SeqNo
	c.mu.Lock()
	if c.state != stateEstablished {
		c.mu.Unlock()
		p.reply(tx, req, sip.StatusCallTransactionDoesNotExists, nil)
		return
	}
	if seq <= c.remoteInviteCSeq {
		c.mu.Unlock()
		p.reply(tx, req, sip.StatusInternalServerError, nil)
		return
	}
	c.remoteInviteCSeq = seq
	if seq > c.remoteCSeq {
		c.remoteCSeq = seq
	}
	if ct := req.Contact(); ct != nil {
		c.remoteTarget = *ct.Address.Clone()
	}
	c.mu.Unlock()

	var local []byte
	late := len(req.Body()) == 0
	if late {
		local = c.offer(c.currentOfferDir())
		c.commitLocal(local, c.currentOfferDir())
	} else {
		info, err := ParseSDP(req.Body())
		if err == nil {
			local, err = c.answerOffer(info, req.Body())
		}
		if err != nil {
			p.log.Debug().Err(err).Msg("re-INVITE offer refused")
			p.reply(tx, req, sip.StatusNotAcceptableHere, nil)
			return
		}
	}

	ch := c.expectAck(seq)
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", local)
	res.AppendHeader(p.contact.Clone())
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if err := tx.Respond(res); err != nil {
		c.dropAckWait(seq)
		p.log.Debug().Err(err).Msg("re-INVITE 200 failed")
		return
	}
	publish(c.reinvites, req)
	ack, err := c.waitAck(p.ctx, tx, res, ch)
	if err != nil {
		c.dropAckWait(seq)
		p.log.Debug().Err(err).Msg("re-INVITE not acknowledged")
		return
	}
	if late && len(ack.Body()) > 0 {
		if _, err := c.applyAnswer(ack.Body(), local, c.currentOfferDir()); err != nil {
			p.log.Debug().Err(err).Msg("bad SDP answer in ACK")
		}
	}
}

// acquireForReInvite takes the dialog's INVITE slot for a re-INVITE from
// the far end. A crossing INVITE of the phone's own still awaiting its
// answer is glare and gets 491 at once. Otherwise the slot is only held for
// a moment (an earlier transaction finishing, its ACK being processed:
// handlers run concurrently, so a re-INVITE sent behind an ACK can overtake
// it), and is awaited for up to T1.
func (c *Call) acquireForReInvite() bool {
	select {
	case c.inviteSem <- struct{}{}:
		return true
	default:
	}
	c.mu.Lock()
	glare := c.ownInviteOut
	c.mu.Unlock()
	if glare {
		return false
	}
	t := time.NewTimer(sip.T1)
	defer t.Stop()
	select {
	case c.inviteSem <- struct{}{}:
		return true
	case <-t.C:
	case <-c.done:
	case <-c.p.ctx.Done():
	}
	return false
}

func (c *Call) currentOfferDir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.localHold {
		return "sendonly"
	}
	return "sendrecv"
}

// offer builds a new local offer; it is committed only once accepted.
func (c *Call) offer(dir string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sdpVer++
	return buildSDP(c.sdpSess, c.sdpVer, c.rtp.local, []uint8{ptPCMU, ptPCMA}, ptEvent, dir)
}

func (c *Call) commitLocal(sdp []byte, dir string) {
	c.mu.Lock()
	c.lastLocalSDP = sdp
	c.localDir = dir
	c.mu.Unlock()
	c.rtp.recvEventPT.Store(ptEvent)
}

// answerOffer applies a remote offer and returns the phone's answer.
func (c *Call) answerOffer(info SDPInfo, body []byte) ([]byte, error) {
	pts, ev, ok := negotiate(info)
	if !ok {
		return nil, errors.New("siptest: no common audio codec")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := answerDirection(info.Direction, c.localHold)
	c.applyRemoteLocked(info, body)
	c.lastRemoteOffer = body
	c.sdpVer++
	local := buildSDP(c.sdpSess, c.sdpVer, c.rtp.local, pts, ev, dir)
	if c.p.cfg.EditSDP != nil {
		local = c.p.cfg.EditSDP(local)
	}
	c.lastLocalSDP = local
	c.localDir = dir
	c.rtp.recvEventPT.Store(int32(ev))
	return local, nil
}

// applyAnswer applies the far end's answer to the offer the phone made with
// direction dir.
func (c *Call) applyAnswer(body, offer []byte, dir string) (SDPInfo, error) {
	info, err := ParseSDP(body)
	if err != nil {
		return info, err
	}
	c.commitLocal(offer, dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyRemoteLocked(info, body)
	c.lastAnswer = body
	c.localHold = dir == "sendonly" || dir == "inactive"
	return info, nil
}

func (c *Call) applyRemoteLocked(info SDPInfo, body []byte) {
	c.remoteMedia = info.Media
	c.remoteDir = info.Direction
	c.lastRemoteSDP = body
	c.sendEventPT = info.EventPT
	for _, f := range info.Formats {
		if f == ptPCMU || f == ptPCMA {
			c.sendPT = f
			break
		}
	}
}

// prebuilt sends a request the phone composed itself: only Via and
// Content-Length are filled in.
func prebuilt(cli *sipgo.Client, req *sip.Request) error {
	if req.Via() == nil {
		if err := sipgo.ClientRequestAddVia(cli, req); err != nil {
			return err
		}
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
	return nil
}

func randInt(lo, hi int) int { return lo + rand.IntN(hi-lo+1) }
