// Package siptest is an in-process SIP softphone for end-to-end tests of the
// switch. It listens on 127.0.0.1 (UDP or TCP), registers with digest
// authentication, places and answers calls with a real RTP socket per call,
// and answers the in-dialog requests a PBX sends (re-INVITE, BYE, NOTIFY,
// INFO, REFER) the way a desk softphone does. It talks to the switch only over
// the wire and imports nothing from the switch.
//
// Behaviour worth knowing when writing tests:
//   - A new INVITE is answered 180 Ringing at once (unless Config.ManualRing),
//     then queued on Incoming; Busy answers 486 without ringing, AutoAnswer
//     answers 200 and publishes the call on Answered.
//   - A re-INVITE from the far end is answered 200 with the mirrored
//     direction (sendonly offer → recvonly; sendrecv → sendrecv, or sendonly
//     while the phone itself holds), the media address follows the offer,
//     and the request is published on Call.ReInvites. A re-INVITE crossing
//     another INVITE transaction gets 491.
//   - REFER is answered 405 unless AcceptRefer is set; then 202 followed by a
//     NOTIFY "SIP/2.0 200 OK" (no transfer happens). NOTIFY, INFO and MESSAGE
//     are answered 200 and published on their channels; channels are
//     buffered and drop when full rather than stall the phone.
//   - Subscribe starts a SUBSCRIBE dialog (a BLF key); its NOTIFYs are
//     answered 200 and published on Subscription.Notifies.
//   - Retransmitted 2xx responses are ACKed again; 2xx responses the phone
//     sends over UDP are retransmitted until ACKed.
//   - sipgo logs connection book-keeping at shutdown through its global
//     logger (sip.SetDefaultLogger); test binaries may silence it.
package siptest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

const (
	queueSize          = 64
	incomingQueueSize  = 16
	closeHangupTimeout = time.Second
	allowMethods       = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, INFO, MESSAGE"
	allowNoRefer       = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, INFO, MESSAGE"
	userAgentName      = "parkswitch-siptest"
)

// Config describes one phone.
type Config struct {
	User        string // SIP user part, also the digest username
	Password    string // digest password; empty disables answering challenges
	Domain      string // AOR domain; defaults to 127.0.0.1
	DisplayName string // display name in From

	// Server is the switch's host:port. Every out-of-dialog request
	// (REGISTER, INVITE, MESSAGE) is sent there, like an outbound proxy;
	// in-dialog requests follow the remote target and route set. Empty
	// means requests go straight to the host of the Request-URI.
	Server string

	// Transport is "udp" (default), "tcp" or "tls".
	Transport string

	// TLS is required with Transport "tls": RootCAs verify the switch,
	// and Certificates, when set, serve the phone's own TLS listener
	// (without them nothing can call in on a new connection, as with a
	// phone behind NAT: calls must come over the phone's connection).
	TLS *tls.Config

	// SIPS makes the phone's Contact and AOR sips: URIs (with "tls").
	SIPS bool

	// ListenIP is the loopback address the phone's SIP socket binds
	// (default 127.0.0.1), e.g. 127.0.0.2 for a trunk told apart by IP.
	ListenIP string

	// Logger receives the phone's and sipgo's logs; the zero value is
	// silent.
	Logger zerolog.Logger

	// AcceptRefer makes the phone answer an in-dialog REFER with 202 and
	// a NOTIFY "SIP/2.0 200 OK" instead of 405. No transfer is performed.
	AcceptRefer bool

	// ManualRing stops the phone from answering a new INVITE with 180
	// Ringing on its own; call Incoming.Ring instead.
	ManualRing bool

	// EditSDP, when set, rewrites the SDP offer of each call the phone
	// dials and each answer it gives before they are sent: a test's way
	// to make SDP this phone would not (SRTP keys, alternative streams,
	// media on a socket of the test's own). The phone's own RTP still
	// follows the far end's SDP.
	EditSDP func(body []byte) []byte
}

// Phone is one SIP user agent bound to an ephemeral 127.0.0.1 port.
type Phone struct {
	cfg       Config
	log       zerolog.Logger
	domain    string
	transport string // "UDP" or "TCP"
	addr      netip.AddrPort
	contact   sip.ContactHeader

	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	cli       *sipgo.Client
	lis       io.Closer
	accepted  atomic.Int64 // connections accepted on a TCP/TLS listener
	serveDone chan struct{}

	// ctx is cancelled by Close; every wait the phone does selects on it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the phone's own goroutines and running request handlers.
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu          sync.Mutex
	closed      bool
	calls       map[dialogKey]*Call
	subs        map[dialogKey]*Subscription // SUBSCRIBE dialogs the phone started
	autoAnswer  bool
	busy        bool
	acceptRefer bool
	regCallID   string
	regCSeq     uint32
	regRes      *sip.Response

	incoming chan *Incoming
	answered chan *Call
	messages chan *sip.Request
}

type dialogKey struct{ callID, localTag string }

// NewPhone starts a phone listening on 127.0.0.1 with an ephemeral port. ctx
// bounds start-up only; the phone runs until Close.
func NewPhone(ctx context.Context, cfg Config) (*Phone, error) {
	tp, err := phoneTransport(cfg)
	if err != nil {
		return nil, err
	}
	domain := cfg.Domain
	if domain == "" {
		domain = "127.0.0.1"
	}
	p := &Phone{
		cfg:         cfg,
		log:         cfg.Logger.With().Str("phone", cfg.User).Logger(),
		domain:      domain,
		transport:   tp,
		serveDone:   make(chan struct{}),
		calls:       make(map[dialogKey]*Call),
		acceptRefer: cfg.AcceptRefer,
		regCallID:   newID(12) + "@127.0.0.1",
		regCSeq:     uint32(randInt(1, 1000)),
		incoming:    make(chan *Incoming, incomingQueueSize),
		answered:    make(chan *Call, queueSize),
		messages:    make(chan *sip.Request, queueSize),
	}
	serve, err := p.listen(ctx)
	if err != nil {
		return nil, err
	}
	p.setContact()
	if err := p.newUA(); err != nil {
		p.lis.Close()
		return nil, err
	}
	p.route()

	p.ctx, p.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(p.serveDone)
		if err := serve(p.srv); err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Debug().Err(err).Msg("serve ended")
		}
	}()
	if tp == "UDP" {
		// Requests are pinned to the listening socket, which sipgo only
		// knows once its read loop has registered it.
		pool := p.ua.TransportLayer().Pool("udp")
		for pool.Size() == 0 {
			select {
			case <-ctx.Done():
				p.Close()
				return nil, ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}
	p.log.Debug().Str("addr", p.addr.String()).Str("transport", tp).Msg("phone listening")
	return p, nil
}

// phoneTransport checks cfg and returns its transport in upper case.
func phoneTransport(cfg Config) (string, error) {
	if cfg.User == "" {
		return "", errors.New("siptest: Config.User is required")
	}
	tp := strings.ToUpper(cfg.Transport)
	if tp == "" {
		tp = "UDP"
	}
	if tp != "UDP" && tp != "TCP" && tp != "TLS" {
		return "", fmt.Errorf("siptest: unsupported transport %q", cfg.Transport)
	}
	if tp == "TLS" && cfg.TLS == nil {
		return "", errors.New("siptest: transport tls needs Config.TLS")
	}
	return tp, nil
}

// listen opens the phone's socket and returns how sipgo serves it.
func (p *Phone) listen(ctx context.Context) (func(*sipgo.Server) error, error) {
	listenIP := p.cfg.ListenIP
	if listenIP == "" {
		listenIP = "127.0.0.1"
	}
	var lc net.ListenConfig
	if p.transport == "UDP" {
		pc, err := lc.ListenPacket(ctx, "udp4", listenIP+":0")
		if err != nil {
			return nil, err
		}
		p.lis = pc
		ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		p.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		return func(s *sipgo.Server) error { return s.ServeUDP(pc) }, nil
	}
	l, err := lc.Listen(ctx, "tcp4", listenIP+":0")
	if err != nil {
		return nil, err
	}
	p.lis = l
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	p.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	counted := &countingListener{Listener: l, n: &p.accepted}
	if p.transport == "TLS" {
		tl := tls.NewListener(counted, p.cfg.TLS)
		return func(s *sipgo.Server) error { return s.ServeTLS(tl) }, nil
	}
	return func(s *sipgo.Server) error { return s.ServeTCP(counted) }, nil
}

// setContact sets the Contact the phone sends: its listening address.
func (p *Phone) setContact() {
	scheme := "sip"
	if p.transport == "TLS" && p.cfg.SIPS {
		scheme = "sips"
	}
	p.contact = sip.ContactHeader{Address: sip.Uri{
		Scheme: scheme, User: p.cfg.User, Host: p.addr.Addr().String(), Port: int(p.addr.Port()),
	}}
	if p.transport != "UDP" && scheme == "sip" {
		p.contact.Address.UriParams = sip.NewParams()
		p.contact.Address.UriParams.Add("transport", strings.ToLower(p.transport))
	}
}

// newUA creates the sipgo user agent, server and client of the phone.
func (p *Phone) newUA() error {
	cfg := p.cfg
	slogger := slog.New(zerolog.NewSlogHandler(p.log.With().Str("component", "sipgo").Logger()))
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.User),
		sipgo.WithUserAgentHostname(p.domain),
		sipgo.WithUserAgenTLSConfig(cfg.TLS),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(slogger),
			sip.WithTransactionLayerUnhandledResponseHandler(p.onUnhandledResponse),
		),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(slogger)),
	)
	if err != nil {
		return err
	}
	p.ua = ua
	p.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(slogger))
	if err == nil {
		opts := []sipgo.ClientOption{
			sipgo.WithClientLogger(slogger),
			sipgo.WithClientHostname(p.addr.Addr().String()),
			sipgo.WithClientPort(int(p.addr.Port())),
		}
		if p.transport == "UDP" {
			// Every request leaves from the listening socket, so the far
			// end sees the same address as in Via and Contact.
			opts = append(opts, sipgo.WithClientConnectionAddr(p.addr.String()))
		}
		p.cli, err = sipgo.NewClient(ua, opts...)
	}
	if err != nil {
		ua.Close()
		return err
	}
	return nil
}

// route registers the phone's request handlers.
func (p *Phone) route() {
	p.srv.OnInvite(p.handle(p.onInvite))
	p.srv.OnAck(p.handle(p.onAck))
	p.srv.OnBye(p.handle(p.onBye))
	p.srv.OnCancel(p.handle(p.onCancel))
	p.srv.OnNotify(p.handle(p.onNotify))
	p.srv.OnMessage(p.handle(p.onMessage))
	p.srv.OnInfo(p.handle(p.onInfo))
	p.srv.OnOptions(p.handle(p.onOptions))
	p.srv.OnRefer(p.handle(p.onRefer))
	p.srv.OnNoRoute(p.handle(func(req *sip.Request, tx sip.ServerTransaction) {
		p.reply(tx, req, sip.StatusMethodNotAllowed, nil, sip.NewHeader("Allow", allowMethods))
	}))
}

// Addr is the phone's SIP listening address.
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// Accepted counts the connections the far end opened to the phone's TCP or
// TLS listener; zero when it reuses the phone's own connections.
func (p *Phone) Accepted() int { return int(p.accepted.Load()) }

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Contact is the phone's contact URI, e.g. sip:1002@127.0.0.1:40123 (with
// ;transport=tcp on TCP); DialURI a peer phone with it.
func (p *Phone) Contact() string { return p.contact.Address.String() }

// AOR is the phone's address of record, sip:user@domain.
func (p *Phone) AOR() string { a := p.aor(); return a.String() }

// Incoming delivers new INVITEs waiting for Answer or Reject. When the queue
// is full the INVITE is answered 480.
func (p *Phone) Incoming() <-chan *Incoming { return p.incoming }

// Answered delivers every inbound call once it is established, including
// calls taken by AutoAnswer.
func (p *Phone) Answered() <-chan *Call { return p.answered }

// Messages delivers MESSAGE requests received (each already answered 200).
func (p *Phone) Messages() <-chan *sip.Request { return p.messages }

// AutoAnswer makes the phone answer new INVITEs itself.
func (p *Phone) AutoAnswer(on bool) { p.mu.Lock(); p.autoAnswer = on; p.mu.Unlock() }

// Busy makes the phone answer new INVITEs 486 Busy Here.
func (p *Phone) Busy(on bool) { p.mu.Lock(); p.busy = on; p.mu.Unlock() }

// AcceptRefer switches between answering REFER 202 (plus NOTIFY) and 405.
func (p *Phone) AcceptRefer(on bool) { p.mu.Lock(); p.acceptRefer = on; p.mu.Unlock() }

// Calls returns the calls currently known to the phone, in no order.
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		out = append(out, c)
	}
	return out
}

// Close ends every call (BYE for established calls, CANCEL for ringing ones,
// each given up to a second), rejects unanswered INVITEs, closes all sockets
// and waits for every goroutine the phone started. It does not unregister.
func (p *Phone) Close() error {
	p.closeOnce.Do(p.shutdown)
	return nil
}

func (p *Phone) shutdown() {
	p.mu.Lock()
	p.closed = true
	calls := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), closeHangupTimeout)
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.terminate(ctx)
		}()
	}
	wg.Wait()
	cancel()

	p.cancel()
	for _, c := range calls {
		c.end(EndClosed)
	}
	p.wg.Wait()
	// Stop reading before sipgo drops its transactions and connections, so
	// that only requests already in flight can still arrive (see handle).
	p.lis.Close()
	<-p.serveDone
	p.ua.Close()
	p.log.Debug().Msg("phone closed")
}

// Register sends REGISTER for expires seconds, answering a 401/407 challenge
// with digest credentials. A final non-2xx is returned as *StatusError.
func (p *Phone) Register(ctx context.Context, expires int) error {
	return p.register(ctx, expires)
}

// LastRegisterResponse is the final response to the latest REGISTER, e.g.
// to read the contacts and expiries the registrar granted.
func (p *Phone) LastRegisterResponse() *sip.Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.regRes
}

// Unregister removes the phone's contact (REGISTER with Expires: 0).
func (p *Phone) Unregister(ctx context.Context) error {
	return p.register(ctx, 0)
}

func (p *Phone) register(ctx context.Context, expires int) error {
	if p.cfg.Server == "" {
		return errors.New("siptest: Register needs Config.Server")
	}
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	p.regCSeq++
	seq := p.regCSeq
	p.mu.Unlock()

	aor := p.aor()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: p.aor().Scheme, Host: p.domain})
	from := &sip.FromHeader{DisplayName: p.cfg.DisplayName, Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", newID(8))
	callID := sip.CallIDHeader(p.regCallID)
	exp := sip.ExpiresHeader(expires)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.REGISTER})
	req.AppendHeader(p.contact.Clone())
	req.AppendHeader(&exp)
	req.AppendHeader(sip.NewHeader("User-Agent", userAgentName))
	req.SetTransport(p.transport)
	req.SetDestination(p.cfg.Server)

	res, err := p.doAuth(ctx, req)
	p.mu.Lock()
	if cs := req.CSeq(); cs != nil && cs.SeqNo > p.regCSeq {
		p.regCSeq = cs.SeqNo
	}
	if res != nil {
		p.regRes = res
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return newStatusError(res)
	}
	p.log.Debug().Int("expires", expires).Msg("registered")
	return nil
}

// doAuth sends an out-of-dialog request and retries it once with digest
// credentials when challenged.
func (p *Phone) doAuth(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if p.ctx.Err() != nil {
		return nil, ErrClosed
	}
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && p.cfg.Password != "" {
		return p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.User, Password: p.cfg.Password})
	}
	return res, nil
}

// SendMessage sends an out-of-dialog MESSAGE (text/plain) to target, a user
// part or a sip: URI, and returns the final status code.
func (p *Phone) SendMessage(ctx context.Context, target, text string) (int, error) {
	uri, dest, err := p.resolve(target)
	if err != nil {
		return 0, err
	}
	if p.isClosed() {
		return 0, ErrClosed
	}
	req := sip.NewRequest(sip.MESSAGE, uri)
	from := &sip.FromHeader{DisplayName: p.cfg.DisplayName, Address: p.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", newID(8))
	callID := sip.CallIDHeader(newID(12) + "@127.0.0.1")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uriWithoutParams(uri)})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte(text))
	req.SetTransport(p.transport)
	if dest != "" {
		req.SetDestination(dest)
	}
	res, err := p.doAuth(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// resolve turns a dial string into a Request-URI and the address to send to:
// the configured server, or "" to follow the URI itself.
func (p *Phone) resolve(target string) (sip.Uri, string, error) {
	var uri sip.Uri
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(target), "<"), ">")
	if strings.HasPrefix(t, "sip:") || strings.HasPrefix(t, "sips:") {
		if err := sip.ParseUri(t, &uri); err != nil {
			return uri, "", fmt.Errorf("siptest: bad URI %q: %w", target, err)
		}
	} else {
		if p.cfg.Server == "" {
			return uri, "", fmt.Errorf("siptest: dialing %q needs Config.Server or a sip: URI", target)
		}
		uri = sip.Uri{Scheme: p.aor().Scheme, User: t, Host: p.domain}
	}
	return uri, p.cfg.Server, nil
}

func (p *Phone) aor() sip.Uri {
	if p.transport == "TLS" && p.cfg.SIPS {
		return sip.Uri{Scheme: "sips", User: p.cfg.User, Host: p.domain}
	}
	return sip.Uri{Scheme: "sip", User: p.cfg.User, Host: p.domain}
}

func (p *Phone) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// track counts a goroutine or handler in wg unless the phone is closing; the
// check and Add share p.mu so Close's Wait never races an Add.
func (p *Phone) track() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

func (p *Phone) goTracked(f func()) bool {
	if !p.track() {
		return false
	}
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

func (p *Phone) addCall(c *Call) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.calls[dialogKey{c.callID, c.localTag}] = c
	return true
}

func (p *Phone) forget(c *Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := dialogKey{c.callID, c.localTag}
	if p.calls[k] == c {
		delete(p.calls, k)
	}
}

func (p *Phone) lookup(callID, localTag string) *Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[dialogKey{callID, localTag}]
}

// dialogFor finds the call an incoming in-dialog request belongs to: the
// far end puts the phone's tag in To.
func (p *Phone) dialogFor(req *sip.Request) *Call {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	return p.lookup(cid.Value(), tag)
}

func (p *Phone) handle(fn func(*sip.Request, sip.ServerTransaction)) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !p.track() {
			if p.ctx.Err() != nil {
				dropLateConnection(tx)
			}
			return
		}
		defer p.wg.Done()
		fn(req, tx)
	}
}

// dropLateConnection closes the socket sipgo opened to answer a request
// that reached it during shutdown, after its connection pool was cleared;
// left open, its reader goroutine would outlive the phone.
func dropLateConnection(tx sip.ServerTransaction) {
	ct, ok := tx.(interface{ Connection() sip.Connection })
	if !ok {
		return
	}
	conn := ct.Connection()
	if conn == nil {
		return
	}
	if u, ok := conn.(*sip.UDPConnection); ok && u.Listener {
		return
	}
	conn.Close()
}

func (p *Phone) reply(tx sip.ServerTransaction, req *sip.Request, code int, body []byte, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reasonPhrase(code), body)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		p.log.Debug().Err(err).Int("code", code).Str("method", req.Method.String()).Msg("respond failed")
	}
}

// inDialog answers 481 when req matches no call.
func (p *Phone) inDialog(req *sip.Request, tx sip.ServerTransaction) *Call {
	c := p.dialogFor(req)
	if c == nil {
		p.reply(tx, req, sip.StatusCallTransactionDoesNotExists, nil)
		return nil
	}
	c.noteRemoteCSeq(req.CSeq().SeqNo)
	return c
}

func (p *Phone) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := p.dialogFor(req); c != nil {
		c.onAck(req)
	}
}

func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.inDialog(req, tx)
	if c == nil {
		return
	}
	// End before answering, so nothing on this side still sees the call
	// once the far end has its 200.
	c.end(EndRemoteHangup)
	p.reply(tx, req, sip.StatusOK, nil)
	p.log.Debug().Str("call", c.callID).Msg("remote BYE")
}

// onCancel sees only CANCELs that matched no pending INVITE (sipgo answers
// the others itself).
func (p *Phone) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	p.reply(tx, req, sip.StatusCallTransactionDoesNotExists, nil)
}

func (p *Phone) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag == "" {
		// Unsolicited NOTIFY (e.g. message waiting): accept and drop.
		p.reply(tx, req, sip.StatusOK, nil)
		return
	}
	if sub := p.subscriptionFor(req); sub != nil {
		p.reply(tx, req, sip.StatusOK, nil)
		publish(sub.notifies, req)
		return
	}
	c := p.inDialog(req, tx)
	if c == nil {
		return
	}
	p.reply(tx, req, sip.StatusOK, nil)
	publish(c.notifies, req)
}

func (p *Phone) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := p.inDialog(req, tx)
	if c == nil {
		return
	}
	p.reply(tx, req, sip.StatusOK, nil)
	publish(c.infos, req)
}

func (p *Phone) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	p.reply(tx, req, sip.StatusOK, nil)
	publish(p.messages, req)
}

func (p *Phone) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	p.reply(tx, req, sip.StatusOK, nil,
		sip.NewHeader("Allow", allowMethods), sip.NewHeader("Accept", "application/sdp"))
}

func (p *Phone) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	c := p.inDialog(req, tx)
	if c == nil {
		return
	}
	p.mu.Lock()
	accept := p.acceptRefer
	p.mu.Unlock()
	if !accept {
		p.reply(tx, req, sip.StatusMethodNotAllowed, nil, sip.NewHeader("Allow", allowNoRefer))
		publish(c.refers, req)
		return
	}
	p.reply(tx, req, sip.StatusAccepted, nil)
	publish(c.refers, req)
	p.goTracked(func() {
		ctx, cancel := context.WithTimeout(p.ctx, 32*time.Second)
		defer cancel()
		if _, err := c.notifyRefer(ctx); err != nil {
			p.log.Debug().Err(err).Msg("refer NOTIFY failed")
		}
	})
}

func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		c := p.dialogFor(req)
		if c == nil {
			p.reply(tx, req, sip.StatusCallTransactionDoesNotExists, nil)
			return
		}
		c.onReInvite(req, tx)
		return
	}

	in, err := newIncoming(p, req, tx)
	if err != nil {
		p.reply(tx, req, sip.StatusBadRequest, nil)
		return
	}
	if !tx.OnCancel(func(*sip.Request) { in.markCanceled() }) {
		return
	}
	p.mu.Lock()
	busy, auto := p.busy, p.autoAnswer
	p.mu.Unlock()
	p.log.Debug().Str("call", in.CallID).Str("from", in.FromUser).Msg("incoming INVITE")

	if busy {
		_ = in.Reject(sip.StatusBusyHere)
		return
	}
	if !p.cfg.ManualRing {
		_ = in.Ring()
	}
	if auto {
		if _, err := in.Answer(p.ctx); err != nil {
			p.log.Debug().Err(err).Msg("auto answer failed")
		}
		return
	}
	select {
	case p.incoming <- in:
	default:
		_ = in.Reject(sip.StatusTemporarilyUnavailable)
		return
	}
	// The handler owns the INVITE server transaction: it stays here until
	// Answer/Reject finished with it, the caller cancelled, or Close.
	select {
	case <-in.finished:
	case <-in.canceled:
	case <-p.ctx.Done():
		_ = in.Reject(sip.StatusTemporarilyUnavailable)
	}
}

// onUnhandledResponse re-sends the ACK for a 2xx retransmission that arrives
// after its INVITE client transaction has gone (RFC 3261 §13.2.2.4).
func (p *Phone) onUnhandledResponse(res *sip.Response) {
	cseq, cid, from := res.CSeq(), res.CallID(), res.From()
	if cseq == nil || cid == nil || from == nil || cseq.MethodName != sip.INVITE || !res.IsSuccess() {
		return
	}
	tag, _ := from.Params.Get("tag")
	if p.ctx.Err() != nil {
		return
	}
	if c := p.lookup(cid.Value(), tag); c != nil {
		c.retransmitAck(res)
	}
}

func publish[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uriWithoutParams(u sip.Uri) sip.Uri {
	c := *u.Clone()
	c.UriParams = nil
	c.Headers = nil
	return c
}
