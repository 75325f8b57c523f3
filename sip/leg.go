package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
)

// legRole says which side of the B2BUA a leg is.
type legRole string

const (
	roleCaller legRole = "a" // the switch is the UAS
	roleCallee legRole = "b" // the switch is the UAC
)

// leg is one dialog of a call together with its media anchor. The switch
// keeps the dialog state (RFC 3261 §12) itself.
type leg struct {
	s    *Switch
	c    *call
	role legRole

	callID   string
	localTag string
	user     *User  // the user on the far side of this leg; nil for a trunk
	hop      string // hopHeader of the INVITE when the far side is another node

	mu           sync.Mutex
	remoteTag    string
	local        sip.Uri // our address in this dialog (From of our requests)
	localName    string
	remote       sip.Uri // the peer's address (To of our requests)
	remoteName   string
	remoteTarget sip.Uri // the peer's Contact
	routeSet     []sip.Uri
	localCSeq    uint32
	remoteCSeq   uint32 // 0 = none seen yet
	inviteCSeq   uint32 // UAC: the CSeq of the INVITE our ACK answers
	transport    string // "UDP", "TCP" or "TLS": of the request that created the leg, or the target's
	sips         bool   // a SIPS dialog (RFC 3261 §12.1.1): our Contact is a sips: URI
	dest         string // host:port where this dialog's requests go (the flow it came on)
	answered     bool   // UAS: our 2xx is sent
	confirmed    bool   // 2xx exchanged and ACKed
	ended        bool

	// For the call record.
	part       legPart
	startedAt  time.Time
	answeredAt time.Time // our 2xx sent (UAS) or the peer's received (UAC)
	endedAt    time.Time

	ep  *media.Endpoint
	sdp *media.SDPWriter
	// SRTP (SDES): sdes says whether this leg's signaling may carry keys
	// (mayUseSDES); srtpKey is the switch's own master key for the leg, nil
	// when it may not. remoteCrypto and remoteProto are what the phone's
	// last SDP said; remoteProto is "" until it sent one.
	sdes         bool
	srtpKey      *media.Key
	remoteCrypto *media.Crypto
	remoteProto  string

	lastSDP  []byte            // the SDP we last sent on this leg
	sentFmts []media.Format    // its audio formats when known without reading it again; nil: read it
	held     bool              // the peer asked us not to send (sendonly/inactive offers)
	desc     media.Description // what the peer's last SDP said
	released bool              // parked away: only its BYE is still expected
	gone     chan struct{}     // closed when the leg's dialog is over
	stopBye  func()            // ends the wait for the answer to our BYE; called with gone
	acked    chan struct{}     // UAS: closed when the ACK for our 2xx arrives
	ackSDP   []byte            // UAS: the SDP answer an ACK carried (delayed offer)
	ackReq   *sip.Request      // UAC: the ACK we sent for the 2xx, re-sent on retransmitted 2xx
	stored   bool              // its dialog was saved to the state store
	dtmf     legDTMF           // DTMF park: the digits sent as INFO, the last attempt (dtmf.go)
}

func (l *leg) String() string { return string(l.role) }

// callOf is the call the leg belongs to. An attended transfer moves a leg
// into another call (attended.go), so it is read under l.mu.
func (l *leg) callOf() *call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// legPart is what a leg is in its call's record.
type legPart string

const (
	partCaller    legPart = "caller"
	partCallee    legPart = "callee"
	partRetriever legPart = "retriever" // dialed the park code
	partRingback  legPart = "ringback"  // answered a ringback
	partTransfer  legPart = "transfer"  // answered a blind transfer
)

// endLocked marks the leg ended, noting when the first time; it needs l.mu.
func (l *leg) endLocked() {
	l.ended = true
	if l.endedAt.IsZero() {
		l.endedAt = l.s.opts.Now()
	}
}

// answeredLocked notes when the leg was first answered; it needs l.mu.
func (l *leg) answeredLocked() {
	if l.answeredAt.IsZero() {
		l.answeredAt = l.s.opts.Now()
	}
}

// Transport is the SIP transport of the leg's signaling, "UDP", "TCP" or
// "TLS": for a leg the switch answers, the transport the dialog-creating
// request arrived on; for a leg it calls out, the transport it was sent
// on. It does not change during the dialog.
func (l *leg) Transport() string { return l.transport }

// OverTLS reports whether the leg's signaling is encrypted (TLS), so that
// keys may be offered in its SDP.
func (l *leg) OverTLS() bool { return mayUseSDES(l.transport) }

func (l *leg) isReleased() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// markGone records that the leg's dialog is over.
func (l *leg) markGone() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked()
	if l.gone != nil && !isClosed(l.gone) {
		close(l.gone)
	}
	if l.stopBye != nil {
		l.stopBye()
		l.stopBye = nil
	}
}

// key is how in-dialog requests of the peer find this leg: Call-ID plus the
// tag the switch chose (the To tag of requests arriving on this leg).
func (l *leg) key() dialogKey { return dialogKey{callID: l.callID, tag: l.localTag} }

// via builds our Via for a request sent on transport.
func (s *Switch) via(transport string) *sip.ViaHeader {
	network := strings.ToLower(transport)
	port := int(s.Addr(network).Port())
	if port == 0 {
		port = int(s.Addr("udp").Port())
	}
	v := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Host: s.advertiseHost, Port: port,
	}
	v.Params.Add("branch", sip.GenerateBranchN(16))
	v.Params.Add("rport", "")
	return v
}

// contact builds our Contact for a leg's dialog, with user as the user part
// so that a phone displays something sensible. A SIPS dialog gets a sips:
// URI (RFC 3261 §12.1.1), which implies TLS without a transport parameter
// (RFC 5630 §3.2); any other dialog names its transport when it is not UDP.
func (s *Switch) contact(user string, l *leg) *sip.ContactHeader {
	network := strings.ToLower(l.transport)
	port := int(s.Addr(network).Port())
	if port == 0 {
		port = int(s.Addr("udp").Port())
	}
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: s.advertiseHost, Port: port}}
	switch {
	case l.sips && network == "tls":
		c.Address.Scheme = "sips"
	case network == "tcp" || network == "tls":
		c.Address.UriParams.Add("transport", network)
	}
	return c
}

// isSIPS reports whether a dialog-creating request makes a SIPS dialog: a
// sips: Request-URI or top Record-Route (RFC 3261 §12.1.1).
func isSIPS(req *sip.Request) bool {
	if strings.EqualFold(req.Recipient.Scheme, "sips") {
		return true
	}
	rr := req.RecordRoute()
	return rr != nil && strings.EqualFold(rr.Address.Scheme, "sips")
}

// newRequest builds an in-dialog request (RFC 3261 §12.2.1.1). ACK reuses the
// INVITE's CSeq number; every other method takes the next one.
func (l *leg) newRequest(method sip.RequestMethod, inviteCSeq uint32) *sip.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	req := sip.NewRequest(method, *l.remoteTarget.Clone())
	req.AppendHeader(l.s.via(l.transport))
	for _, r := range l.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.local.Clone()}
	from.Params.Add("tag", l.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: l.remoteName, Address: *l.remote.Clone()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(l.callID)
	req.AppendHeader(&cid)
	seq := inviteCSeq
	if method != sip.ACK {
		l.localCSeq++
		seq = l.localCSeq
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if method == sip.INVITE || method == sip.UPDATE || method == sip.REFER || method == sip.NOTIFY {
		req.AppendHeader(l.s.contact(l.local.User, l))
	}
	l.s.addressRequest(req, l.transport, l.dest)
	return req
}

// addressRequest pins where a request goes and which socket it leaves from:
// UDP leaves from our listening port (phones and NATs expect that), TCP
// reuses the connection the peer opened when there is one.
func (s *Switch) addressRequest(req *sip.Request, transport, dest string) {
	req.SetTransport(strings.ToUpper(transport))
	if dest != "" {
		req.SetDestination(dest)
	}
	if strings.EqualFold(transport, "udp") {
		if a := s.Addr("udp"); a.IsValid() {
			req.Laddr = sip.Addr{IP: a.Addr().AsSlice(), Port: int(a.Port())}
		}
	}
}

// asBuilt passes a request to sipgo exactly as we built it.
func asBuilt(*sipgo.Client, *sip.Request) error { return nil }

// transaction starts a client transaction for a request we built.
func (s *Switch) transaction(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	tx, err := s.client.TransactionRequest(ctx, req, asBuilt)
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", req.Method, err)
	}
	return tx, nil
}

// do sends a non-INVITE request and waits for its final response.
func (s *Switch) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := s.transaction(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	return finalResponse(ctx, tx)
}

// finalResponse waits for tx's final response, skipping provisional ones.
// The caller terminates tx, so it can still act (ACK a 2xx) while tx lives.
func finalResponse(ctx context.Context, tx sip.ClientTransaction) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a final response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// writeAck sends an ACK (which has no transaction of its own).
func (s *Switch) writeAck(req *sip.Request) error {
	return s.client.WriteRequest(req, asBuilt)
}

// checkRemoteCSeq applies RFC 3261 §12.2.2: a request whose CSeq is lower
// than the last one seen in this dialog is out of order.
func (l *leg) checkRemoteCSeq(req *sip.Request) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := req.CSeq().SeqNo
	if l.remoteCSeq != 0 && seq <= l.remoteCSeq && req.Method != sip.ACK {
		return false
	}
	if req.Method != sip.ACK {
		l.remoteCSeq = seq
	}
	return true
}

// mayUseSDES is the one place that decides whether a leg may use SDES
// SRTP: only when its signaling came, or goes, over TLS, since a=crypto
// carries the master key in clear text (RFC 4568 §8.3). transport is what
// sipgo reports for the leg's request ("UDP", "TCP", "TLS", ...).
func mayUseSDES(transport string) bool {
	return strings.EqualFold(transport, "TLS")
}

// newKey draws a master key for a leg that may use SDES, nil otherwise.
func (s *Switch) newKey(sdes bool) *media.Key {
	if !sdes {
		return nil
	}
	k, err := media.NewKey()
	if err != nil {
		// No randomness: such a leg is offered and answered plain RTP.
		s.log.Error().Err(err).Msg("cannot draw an SRTP key")
		return nil
	}
	return &k
}

// parse reads an SDP the phone on this leg sent, under what its transport
// allows (media.Parse).
func (l *leg) parse(body []byte) (media.Description, error) {
	return media.Parse(body, l.sdes)
}

// parseSession is parse, keeping the parsed body for localSDPOf.
func (l *leg) parseSession(body []byte) (*media.Session, error) {
	return media.ParseSession(body, l.sdes)
}

// applyKeys keys the leg's endpoint from the phone's SDP: SRTP with the
// phone's key in and ours out when it gave an a=crypto we accept, plain
// RTP otherwise.
func (l *leg) applyKeys(d media.Description) {
	l.mu.Lock()
	l.remoteCrypto, l.remoteProto = d.SRTP, d.Proto
	key := l.srtpKey
	l.mu.Unlock()
	var k *media.SRTP
	if d.SRTP != nil && key != nil {
		k = &media.SRTP{Local: *key, Remote: d.SRTP.Key}
	}
	if err := l.ep.SetSRTP(k); err != nil {
		l.callOf().log.Warn().Err(err).Str("leg", l.String()).Msg("cannot key SRTP")
	}
}

// usesSRTP reports whether the phone on this leg keyed SRTP.
func (l *leg) usesSRTP() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.remoteCrypto != nil
}

// keying is how SDP for this leg is written from a body from leg from
// (nil for the switch's own offers): SRTP with our key when the phone
// keyed SRTP, or, before it sent any SDP, when from did ("SRTP follows
// the offer"), and only on a leg that may use SDES.
func (l *leg) keying(from *leg) media.Keying {
	var k media.Keying
	if from != nil {
		k.FromSDES = from.sdes
	}
	l.mu.Lock()
	rc, proto, key := l.remoteCrypto, l.remoteProto, l.srtpKey
	l.mu.Unlock()
	switch {
	case key == nil:
	case rc != nil:
		k.Crypto, k.Proto = &media.Crypto{Tag: rc.Tag, Key: *key}, proto
	case proto == "" && from != nil && from.usesSRTP():
		k.Crypto = &media.Crypto{Tag: 1, Key: *key}
	}
	return k
}

// offerSDP is the switch's own offer to this leg (music on hold).
func (l *leg) offerSDP(formats []media.Format, dir media.Direction) []byte {
	return l.sdp.OfferKeyed(int(l.ep.Addr().Port()), formats, dir, l.keying(nil))
}

// setRemoteMedia points the leg's media endpoint at what the peer's SDP
// signals and remembers whether the peer put us on hold.
func (l *leg) setRemoteMedia(d media.Description) {
	l.ep.SetRemote(d.Addr, d.RTCPMux)
	l.applyKeys(d)
	l.mu.Lock()
	l.held = d.OnHold() || !d.Addr.Addr().IsValid()
	l.desc = d
	l.mu.Unlock()
	l.watchDigits()
}

// expectsMedia reports whether the phone on this leg should be sending RTP:
// its last SDP is sendrecv with an address, and the leg is not parked away.
// A held phone, one that answered recvonly or inactive (baresip answers
// the switch's sendonly music offer so, and may stay quiet after), or one
// that holds the other side may rightly send nothing.
func (l *leg) expectsMedia() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.released && !l.held && l.desc.Direction == media.SendRecv && l.desc.Addr.Port() != 0
}

// localSDP rewrites an SDP that leg from sent for this leg so that it
// points at our endpoint, with this leg's own keys when it uses SRTP; dir
// overrides the direction when non-empty.
func (l *leg) localSDP(body []byte, dir media.Direction, from *leg) ([]byte, error) {
	k := l.keying(from)
	sess, err := media.ParseSession(body, k.FromSDES)
	if err != nil {
		return nil, err
	}
	return l.rewrite(sess, dir, from, k)
}

// localSDPOf is localSDP of a body parsed already (a call's offer, read
// once for all its forks, or an answer read once for its media).
func (l *leg) localSDPOf(sess *media.Session, dir media.Direction, from *leg) ([]byte, error) {
	return l.rewrite(sess, dir, from, l.keying(from))
}

func (l *leg) rewrite(sess *media.Session, dir media.Direction, from *leg, k media.Keying) ([]byte, error) {
	out, err := l.sdp.RewriteSession(sess, int(l.ep.Addr().Port()), dir, k)
	if err != nil {
		return nil, err
	}
	l.rewrote(out, sess.FormatsFor(k), from)
	return out, nil
}

// rewrote records out, the SDP rewritten from leg from's body with
// formats, as sent on l, and arms l's DTMF detector for it.
func (l *leg) rewrote(out []byte, formats []media.Format, from *leg) {
	l.sent(out, formats)
	if from != l { // not an echo for a leg the switch is letting go
		l.watchDigits()
	}
}

// sent records body as the SDP last sent on l; formats are its audio
// formats, or nil when only body says them.
func (l *leg) sent(body []byte, formats []media.Format) {
	l.mu.Lock()
	l.lastSDP, l.sentFmts = body, formats
	l.mu.Unlock()
}

// flowOf gives the address to use for requests to the sender of req: the
// source it came from (received/rport, RFC 3581), which also traverses NAT.
func flowOf(req *sip.Request) string {
	src := req.Source()
	if ap, err := netip.ParseAddrPort(src); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return src
}
