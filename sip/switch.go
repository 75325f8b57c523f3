package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/sip/digest"
	"github.com/parkswitch/parkswitch/sip/sipcheck"
	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
)

// udpSocketBuffer is the receive and send buffer asked for the SIP UDP
// sockets.
const udpSocketBuffer = 4 << 20

// Listen is one SIP listener: network "udp", "tcp" or "tls" and a host:port.
type Listen struct {
	Network string
	Addr    string
}

// Options configure a Switch. Zero values take the documented defaults.
type Options struct {
	Domain      string     // SIP domain and digest realm
	Listen      []Listen   // at least one
	AdvertiseIP netip.Addr // written into Contact, Via and SDP; default: the listen IP, or the host's primary IP for a wildcard listener
	Directory   *Directory
	Ports       *media.PortPool
	Logger      zerolog.Logger
	Registry    prometheus.Registerer // nil: metrics are not registered anywhere
	Now         func() time.Time      // default time.Now; tests inject a clock

	Policies       *policy.Set        // call park policies; default: Global only (park disabled)
	ParkUser       string             // REFER to sip:<ParkUser>@… parks (default "park")
	RetrievePrefix string             // dial <prefix><code> to retrieve
	Park           park.Config        // ringback length, cycles, fallback
	ParkClock      park.Clock         // default: real time; tests shorten park timeouts with it
	Music          *media.MusicOnHold // what parked callers hear; nil = silence
	Prompts        *Prompts           // speak the code to the parker after a park (SPEC §11); nil = not spoken
	ReleaseTimeout time.Duration      // the parker's leg is hung up this long after a park if it has not (default 30 s)
	ConsultTimeout time.Duration      // a call to the park address that parks nothing is hung up after this (default 60 s)
	DTMFParkCode   string             // keyed during a bridged call, parks the other party (dtmf.go); "" = off
	DTMFTimeout    time.Duration      // digits of a possible DTMF park code are withheld this long (default media.DigitTimeout)

	NoAnswerTimeout  time.Duration // an unanswered outbound INVITE is given up after this (default 60 s)
	MediaTimeout     time.Duration // a call whose media is silent this long is ended (0 = never)
	NonceTTL         time.Duration // digest nonce lifetime (default 5 min)
	DigestAlgorithms []string      // offered in challenges, in order (default MD5, SHA-256)
	MaxExpires       int           // upper bound for a registration's lifetime in seconds (default 3600)

	TLS       *tls.Config // certificate served on "tls" listeners; required with one
	TLSClient *tls.Config // verifies peers the switch dials over TLS (trunks); nil: system roots

	MaxConnections      int           // TCP and TLS connections open at once (default 10,000)
	MaxConnectionsPerIP int           // of them from one source IP (default 100)
	IncompleteTimeout   time.Duration // a connection whose message stays incomplete this long is closed (default 10 s)

	BanAfter       int           // failed authentications within BanWindow that ban a source (default 10)
	BanWindow      time.Duration // default 60 s
	BanTime        time.Duration // how long a banned source is ignored (default 600 s)
	RetrieveMisses int           // retrieves of empty codes per user and minute before 403 (default 10)

	// OverloadWait is how long runnable goroutines may wait for a CPU (99th
	// percentile per 100 ms, smoothed) before new dialogs and registrations are
	// shed with 503 (overload.go). 0 takes DefaultOverloadWait; negative
	// turns shedding off.
	OverloadWait time.Duration
	// overloadSample replaces the scheduler's wait, every overloadEvery,
	// in tests that drive the control by hand.
	overloadSample func() time.Duration
	overloadEvery  time.Duration

	// Park lamp (BLF) subscriptions, SPEC §11.
	SubscribeMinExpires     int // shorter subscriptions get 423 (default 60 s)
	MaxSubscriptions        int // in force at once (default 20,000)
	MaxSubscriptionsPerUser int // of them by one user (default 200)

	// Store is the shared, durable state (SPEC §10): registrations,
	// orbits, dialogs, events and call records. Nil: a private in-memory
	// store, which survives nothing.
	Store store.Store
}

// Switch is the B2BUA: listeners, registrar, authentication and calls.
type Switch struct {
	opts   Options
	log    zerolog.Logger
	dir    atomic.Pointer[Directory]
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	auth   *digest.Server
	tagKey [32]byte  // keys toTag
	tagMAC sync.Pool // of *tagHash, keyed with tagKey
	// advertiseHost is opts.AdvertiseIP as the host of our Via and Contact.
	advertiseHost string
	reg           *Registrar
	// Store failures, logged rate-limited by what failed.
	storeLogMu sync.Mutex
	storeLog   map[string]*rateLimit
	cluster    cluster
	dialogs    dialogStore
	lamps      lamps       // park lamp subscriptions: dialogs of their own
	retrieveTo retrieveTos // parked calls being rung to a user (retrieveto.go)
	metrics    *metrics
	events     *eventQueue // to the store, off the SIP path
	lot        *park.Lot
	announcer  *media.Announcer // plays Prompts; nil without them
	policies   atomic.Pointer[policy.Set]
	numbers    atomic.Pointer[ParkNumbers]
	sec        security
	load       shedding
	dtmfKeys   chan *leg     // legs whose phone keyed the DTMF park code, for dtmfWorker
	dtmfFull   atomic.Uint64 // codes dropped because dtmfKeys was full

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the switch starts
	byes   sync.WaitGroup // BYEs in flight, which shutdown lets finish

	limits   *connLimits
	stackLog *stackLogHandler
	writes   *store.WriteBehind // dialog snapshots, written behind
	durable  bool               // the store outlives the process: parked calls are left in it on shutdown

	mu        sync.Mutex
	listeners []func() error // closers
	serving   []*listenerState
	addrs     map[string]netip.AddrPort
	calls     map[*call]struct{}
	closing   bool
}

// setDefaults fills the fields left zero with their defaults.
func (opts *Options) setDefaults() {
	if opts.Directory == nil {
		opts.Directory = NewDirectory(nil, nil)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NoAnswerTimeout <= 0 {
		opts.NoAnswerTimeout = 60 * time.Second
	}
	if opts.NonceTTL <= 0 {
		opts.NonceTTL = 5 * time.Minute
	}
	if opts.MaxExpires <= 0 {
		opts.MaxExpires = 3600
	}
	if opts.ParkUser == "" {
		opts.ParkUser = "park"
	}
	if opts.ParkClock == nil {
		opts.ParkClock = park.RealClock()
	}
	if opts.ReleaseTimeout <= 0 {
		opts.ReleaseTimeout = 30 * time.Second
	}
	if opts.ConsultTimeout <= 0 {
		opts.ConsultTimeout = 60 * time.Second
	}
	if opts.DTMFTimeout <= 0 {
		opts.DTMFTimeout = media.DigitTimeout
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxConnectionsPerIP <= 0 {
		opts.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if opts.IncompleteTimeout <= 0 {
		opts.IncompleteTimeout = DefaultIncompleteTimeout
	}
	if opts.SubscribeMinExpires <= 0 {
		opts.SubscribeMinExpires = DefaultSubscribeMinExpires
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if opts.MaxSubscriptionsPerUser <= 0 {
		opts.MaxSubscriptionsPerUser = DefaultMaxSubscriptionsPerUser
	}
}

// New builds a switch; Start binds its listeners.
func New(opts Options) (*Switch, error) {
	if opts.Domain == "" {
		return nil, errors.New("sip: domain is required")
	}
	if len(opts.Listen) == 0 {
		return nil, errors.New("sip: at least one listener is required")
	}
	if opts.Ports == nil {
		return nil, errors.New("sip: a media port pool is required")
	}
	if opts.DTMFParkCode != "" && !media.ValidCode(opts.DTMFParkCode) {
		return nil, fmt.Errorf("sip: DTMF park code %q: %w", opts.DTMFParkCode, ErrBadDTMFCode)
	}
	opts.setDefaults()
	durable := opts.Store != nil
	if opts.Store == nil {
		opts.Store = memstore.New(memstore.Options{Now: opts.Now}).Open("local", "")
	}
	if opts.Policies == nil {
		set, err := policy.NewSet(nil, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("sip: default policies: %w", err)
		}
		opts.Policies = set
	}
	s := &Switch{
		opts:  opts,
		log:   opts.Logger.With().Str("component", "sip").Logger(),
		addrs: make(map[string]netip.AddrPort),
		calls: make(map[*call]struct{}),

		storeLog: make(map[string]*rateLimit),
		dtmfKeys: make(chan *leg, dtmfQueueLen),
	}
	s.dir.Store(opts.Directory)
	s.policies.Store(opts.Policies)
	s.numbers.Store(&ParkNumbers{ParkUser: opts.ParkUser, RetrievePrefix: opts.RetrievePrefix, DTMFCode: opts.DTMFParkCode})
	if opts.AdvertiseIP.IsValid() {
		s.advertiseHost = opts.AdvertiseIP.String()
	}
	if _, err := rand.Read(s.tagKey[:]); err != nil {
		return nil, fmt.Errorf("sip: random: %w", err)
	}
	s.auth = digest.NewServer(opts.Domain, nil, opts.NonceTTL, opts.Now)
	s.auth.Offer(opts.DigestAlgorithms...)
	s.reg = newRegistrar(opts.Now, opts.MaxExpires, opts.Store.NodeID())
	s.dialogs.init()
	s.lamps.init(s)
	s.lot = park.NewLot(opts.ParkClock, opts.Park, s, s.onParkEvent)
	s.lot.Share(opts.Store, opts.Store.NodeID(), s.log)
	s.durable = durable
	s.writes = store.NewWriteBehind(s.log, 0)
	s.limits = newConnLimits(opts.MaxConnections, opts.MaxConnectionsPerIP)
	s.stackLog = newStackLogHandler(zerolog.NewSlogHandler(opts.Logger.With().Str("component", "sipgo").Logger().Level(zerolog.WarnLevel)))
	s.metrics = newMetrics(s, opts.Registry)
	s.events = newEventQueue(opts.Store, opts.Logger.With().Str("component", "events").Logger(), opts.Registry, eventQueueLen)
	s.initSecurity(opts.Registry)
	s.initOverload(opts.Registry)
	if err := s.initAnnouncer(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Store is the state the switch keeps its shared records in.
func (s *Switch) Store() store.Store { return s.opts.Store }

// SetPolicies replaces the call park policies. Orbits already parked keep
// their code and ringback deadline (SPEC §2); the next park or retrieve
// uses the new set.
func (s *Switch) SetPolicies(set *policy.Set) { s.policies.Store(set) }

// ParkNumbers are what phones dial for call park.
type ParkNumbers struct {
	ParkUser       string // REFER to sip:<ParkUser>@… parks
	RetrievePrefix string // dial <prefix><code> to retrieve
	DTMFCode       string // keyed in a call, parks the other party; "" = off
}

// SetParkNumbers changes the park address, retrieve prefix and DTMF park
// code for the next park and retrieve, and the next digit keyed. A DTMF
// code that is not media.ValidCode turns DTMF park off.
func (s *Switch) SetParkNumbers(n ParkNumbers) {
	if n.ParkUser == "" {
		n.ParkUser = "park"
	}
	if !media.ValidCode(n.DTMFCode) {
		n.DTMFCode = ""
	}
	s.numbers.Store(&n)
}

// Policies returns the call park policies in force.
func (s *Switch) Policies() *policy.Set { return s.policies.Load() }

// Lot is the park lot: the orbits of every policy.
func (s *Switch) Lot() *park.Lot { return s.lot }

// SetDirectory replaces users and trunks; calls in progress keep theirs.
func (s *Switch) SetDirectory(d *Directory) { s.dir.Store(d) }

// Directory returns the users and trunks in force.
func (s *Switch) Directory() *Directory { return s.dir.Load() }

// Addr returns the bound address of the first listener of a network
// ("udp", "tcp" or "tls"), useful when the configuration asked for port 0.
func (s *Switch) Addr(network string) netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[network]
}

// Start binds every listener and serves until Shutdown.
func (s *Switch) Start() error {
	udpConns, streamLns, err := s.bind()
	if err != nil {
		return err
	}
	s.noteAddrs(udpConns, streamLns)
	if err := s.newStack(); err != nil {
		s.closeAll(udpConns, streamLns)
		return err
	}
	s.routes()
	// Before the first request: the phones registered here before a
	// restart, and the other nodes.
	loaded := s.loadBindings()
	ctx, cancel := context.WithTimeout(s.ctx, loadTimeout)
	s.publishAddr(ctx)
	if err := s.refreshNodes(ctx); err != nil {
		s.storeTrouble("live nodes not read", err)
	}
	cancel()

	for _, pc := range udpConns {
		s.serve(&listenerState{name: "udp://" + pc.LocalAddr().String()}, func() error { return s.srv.ServeUDP(pc) }, pc.Close)
	}
	for _, ln := range streamLns {
		run := func() error { return s.srv.ServeTCP(ln) }
		if ln.network == "tls" {
			run = func() error { return s.srv.ServeTLS(ln) }
		}
		s.serve(&listenerState{name: ln.network + "://" + ln.Addr().String(), guard: ln}, run, ln.Close)
	}
	s.startBackground(loaded)
	ev := s.log.Info().Str("advertise_ip", s.opts.AdvertiseIP.String())
	for _, n := range []string{"udp", "tcp", "tls"} {
		if a := s.Addr(n); a.IsValid() {
			ev = ev.Str(n, a.String())
		}
	}
	ev.Str("domain", s.opts.Domain).Msg("sip listening")
	return nil
}

// bind opens every configured listener; on an error it closes those it
// opened.
func (s *Switch) bind() ([]net.PacketConn, []*guardedListener, error) {
	var udpConns []net.PacketConn
	var streamLns []*guardedListener
	fail := func(err error) ([]net.PacketConn, []*guardedListener, error) {
		s.closeAll(udpConns, streamLns)
		return nil, nil, err
	}
	for _, l := range s.opts.Listen {
		switch network := strings.ToLower(l.Network); network {
		case "udp":
			pc, err := net.ListenPacket("udp", l.Addr)
			if err != nil {
				return fail(fmt.Errorf("sip: listen udp %s: %w", l.Addr, err))
			}
			// The default socket buffer (about 200 KiB) overflows in bursts
			// of a few thousand calls per second; every lost datagram costs
			// a 500 ms retransmission. The kernel caps it at rmem_max.
			if uc, ok := pc.(*net.UDPConn); ok {
				uc.SetReadBuffer(udpSocketBuffer)
				uc.SetWriteBuffer(udpSocketBuffer)
				pc = newRawUDPConn(uc)
			}
			udpConns = append(udpConns, pc)
		case "tcp", "tls":
			var tcfg *tls.Config
			if network == "tls" {
				if s.opts.TLS == nil || (len(s.opts.TLS.Certificates) == 0 && s.opts.TLS.GetCertificate == nil) {
					return fail(fmt.Errorf("sip: listen tls %s: no certificate configured", l.Addr))
				}
				tcfg = s.opts.TLS
			}
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				return fail(fmt.Errorf("sip: listen %s %s: %w", network, l.Addr, err))
			}
			streamLns = append(streamLns, newGuardedListener(ln, network, tcfg, s.limits, s.opts.IncompleteTimeout, s.log, s.metrics.connRefused))
		default:
			return fail(fmt.Errorf("sip: unsupported transport %q", l.Network))
		}
	}
	return udpConns, streamLns, nil
}

// noteAddrs records the first bound address of each transport and, unless
// one is configured, picks the address to advertise from them.
func (s *Switch) noteAddrs(udpConns []net.PacketConn, streamLns []*guardedListener) {
	s.mu.Lock()
	for _, pc := range udpConns {
		if _, ok := s.addrs["udp"]; !ok {
			s.addrs["udp"] = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		}
	}
	for _, ln := range streamLns {
		if _, ok := s.addrs[ln.network]; !ok {
			s.addrs[ln.network] = ln.Addr().(*net.TCPAddr).AddrPort()
		}
	}
	first := s.addrs["udp"]
	for _, n := range []string{"tcp", "tls"} {
		if !first.IsValid() {
			first = s.addrs[n]
		}
	}
	s.mu.Unlock()
	if !s.opts.AdvertiseIP.IsValid() {
		s.opts.AdvertiseIP = advertiseFor(first.Addr())
	}
	s.advertiseHost = s.opts.AdvertiseIP.String()
}

// newStack builds the SIP user agent, server and client.
func (s *Switch) newStack() error {
	stackLog := slog.New(s.stackLog)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("parkswitch"),
		sipgo.WithUserAgentParser(sipcheck.NewParser()),
		sipgo.WithUserAgentHostname(s.opts.AdvertiseIP.String()),
		sipgo.WithUserAgenTLSConfig(s.opts.TLSClient),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(stackLog)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(stackLog),
			sip.WithTransactionLayerUnhandledResponseHandler(s.onUnmatchedResponse),
		),
	)
	if err != nil {
		return fmt.Errorf("sip: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(stackLog))
	if err != nil {
		ua.Close()
		return fmt.Errorf("sip: server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(s.opts.AdvertiseIP.String()), sipgo.WithClientLogger(stackLog))
	if err != nil {
		ua.Close()
		return fmt.Errorf("sip: client: %w", err)
	}
	s.ua, s.srv, s.client = ua, srv, client
	return nil
}

// startBackground starts the switch's own goroutines, each stopped by
// Shutdown: the events queue, the janitor, the DTMF park worker,
// registration sync, the node watch, the state watch, the music, the
// announcements and the overload control.
func (s *Switch) startBackground(loaded bool) {
	s.events.start(&s.wg)
	s.wg.Add(5)
	go s.janitor()
	go s.dtmfWorker()
	go s.syncRegistrations(loaded)
	go s.watchNodes()
	go s.watchState()
	s.startOrbitWatch() // park lamps of every node
	if m := s.opts.Music; m != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			m.Run(s.ctx)
		}()
	}
	s.runAnnouncer()
	s.runOverload()
}

func (s *Switch) closeAll(pcs []net.PacketConn, lns []*guardedListener) {
	for _, pc := range pcs {
		pc.Close()
	}
	for _, ln := range lns {
		ln.Close()
	}
}

// listenerState is one serving listener, for health checks.
type listenerState struct {
	name    string
	guard   *guardedListener // nil for UDP
	stopped atomic.Bool      // its serve loop returned
}

func (s *Switch) serve(ls *listenerState, run func() error, closer func() error) {
	s.mu.Lock()
	s.listeners = append(s.listeners, closer)
	s.serving = append(s.serving, ls)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := run()
		if s.ctx.Err() != nil {
			return
		}
		ls.stopped.Store(true)
		s.log.Error().Err(err).Str("listener", ls.name).Msg("sip listener stopped")
	}()
}

// ListenersDown names the listeners that are not serving: stopped, or
// failing to accept connections (e.g. out of file descriptors).
func (s *Switch) ListenersDown() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var down []string
	for _, ls := range s.serving {
		if ls.stopped.Load() || (ls.guard != nil && ls.guard.Down()) {
			down = append(down, ls.name)
		}
	}
	return down
}

// Connections reports the TCP and TLS connections the switch has accepted
// and not yet closed.
func (s *Switch) Connections() int { return s.limits.open() }

// routes registers the request handlers.
func (s *Switch) routes() {
	s.srv.OnRegister(s.guard(s.onRegister))
	s.srv.OnInvite(s.guard(s.onInvite))
	s.srv.OnAck(s.onAck)
	s.srv.OnBye(s.guard(s.onInDialog))
	s.srv.OnInfo(s.guard(s.onInDialog))
	s.srv.OnUpdate(s.guard(s.onInDialog))
	s.srv.OnRefer(s.guard(s.onInDialog))
	s.srv.OnNotify(s.guard(s.onInDialog))
	s.srv.OnMessage(s.guard(s.onMessage))
	s.srv.OnOptions(s.guard(s.onOptions))
	s.srv.OnCancel(s.guard(s.onStrayCancel))
	s.srv.OnSubscribe(s.guard(s.onSubscribe))
	s.srv.OnNoRoute(s.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		res := s.response(req, sip.StatusMethodNotAllowed, "")
		res.AppendHeader(sip.NewHeader("Allow", allowMethods))
		s.respond(tx, res)
	}))
}

// storeFlushTimeout bounds each flush to the state store on shutdown.
const storeFlushTimeout = 2 * time.Second

// Shutdown ends every call with BYE (but for parked calls, which a durable
// store keeps for the next start or another node), stops the listeners and
// waits for the switch's goroutines, bounded by ctx.
func (s *Switch) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	// Park lamps go dark with a last NOTIFY, sent while calls end.
	s.lamps.shutdown()
	// No ringback may start while calls are being ended.
	if err := s.lot.Close(ctx); err != nil {
		s.log.Warn().Err(err).Msg("park lot did not stop in time")
	}
	s.retrieveTo.stopAll()
	s.endCalls(ctx)
	s.flushState(ctx)
	s.cancel()
	// NOTIFYs still unanswered give up now that ctx is done.
	if err := s.lamps.wait(ctx); err != nil {
		s.log.Warn().Err(err).Msg("park lamp senders did not stop in time")
	}
	s.closeTransports()
	// The calls' last events and records, before the store closes.
	ectx, ecancel := context.WithTimeout(ctx, storeFlushTimeout)
	s.events.close(ectx)
	ecancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sip: shutdown: %w", ctx.Err())
	}
}

// endCalls ends every call, or leaves it to the store when it is parked
// and the store is durable, and waits a short while for the BYEs and the
// lamps' last NOTIFYs to be answered.
func (s *Switch) endCalls(ctx context.Context) {
	s.mu.Lock()
	calls := make([]*call, 0, len(s.calls))
	for c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()

	for _, c := range calls {
		if s.durable && c.leave() {
			continue // parked: the next start, or another node, takes it up
		}
		c.end(endShutdown, nil)
	}
	// Let the BYEs be answered before the transports close, but do not
	// wait long for phones that never answer.
	byes := make(chan struct{})
	go func() { s.byes.Wait(); close(byes) }()
	grace := time.NewTimer(3 * time.Second)
	defer grace.Stop()
	select {
	case <-byes:
	case <-grace.C:
	case <-ctx.Done():
	}
	lctx, lcancel := context.WithTimeout(ctx, time.Second)
	if err := s.lamps.wait(lctx); err != nil {
		s.log.Debug().Err(err).Msg("park lamps' last NOTIFYs not answered in time")
	}
	lcancel()
}

// flushState gives what is written behind a short while: with the store
// away it would take the whole shutdown, and a restart rebuilds it anyway.
func (s *Switch) flushState(ctx context.Context) {
	wctx, wcancel := context.WithTimeout(ctx, storeFlushTimeout)
	defer wcancel()
	if err := s.lot.Release(wctx); err != nil {
		s.log.Warn().Err(err).Msg("orbit changes not written to the state store")
	}
	if !s.writes.Flush(wctx) {
		s.log.Warn().Int("pending", s.writes.Pending()).Msg("dialog snapshots not written to the state store")
	}
	s.writes.Close()
}

// closeTransports closes the listeners and every connection.
func (s *Switch) closeTransports() {
	s.mu.Lock()
	closers := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	for _, cl := range closers {
		cl()
	}
	// sipgo closes the connections in its pool; close the accepted ones it
	// may have dropped from the pool too, so that no reader outlives us.
	s.limits.closeAll()
	if s.ua != nil {
		s.ua.Close()
	}
}

// ActiveCalls reports calls in progress (ringing or answered).
func (s *Switch) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Dialogs reports legs the switch still tracks; zero when idle.
func (s *Switch) Dialogs() int { return s.dialogs.len() }

func (s *Switch) addCall(c *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.calls[c] = struct{}{}
	return true
}

func (s *Switch) removeCall(c *call) {
	s.mu.Lock()
	delete(s.calls, c)
	s.mu.Unlock()
}

// every runs fn every d until the switch stops.
func (s *Switch) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// janitor expires registrations and ends calls whose media went silent,
// once a second.
func (s *Switch) janitor() {
	defer s.wg.Done()
	s.every(time.Second, s.sweep)
}

// sweep is one round of the janitor.
func (s *Switch) sweep() {
	s.reg.expire()
	s.stackLog.Flush()
	if s.opts.MediaTimeout <= 0 {
		return
	}
	s.mu.Lock()
	calls := make([]*call, 0, len(s.calls))
	for c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	now := s.opts.Now()
	for _, c := range calls {
		if c.mediaSilent(now, s.opts.MediaTimeout) {
			c.log.Info().Dur("timeout", s.opts.MediaTimeout).Msg("no RTP: ending call")
			c.end(endRTPTimeout, nil)
		}
	}
}

// SetStackLogger routes the SIP stack's own process-wide logs, warnings and
// above, into l, bounded like a switch's own stack log (see
// stackLogHandler). Call it once at start-up, before any Switch starts.
func SetStackLogger(l zerolog.Logger) {
	sip.SetDefaultLogger(slog.New(newStackLogHandler(zerolog.NewSlogHandler(l.With().Str("component", "sipgo").Logger().Level(zerolog.WarnLevel)))))
}

// advertiseFor picks the address to write into SIP and SDP for a listener
// bound to ip: the ip itself, or for a wildcard the host's primary address.
func advertiseFor(ip netip.Addr) netip.Addr {
	if ip.IsValid() && !ip.IsUnspecified() {
		return ip.Unmap()
	}
	// A UDP "connection" only selects a route; nothing is sent.
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
			if ap := a.AddrPort(); ap.Addr().IsValid() {
				return ap.Addr().Unmap()
			}
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}
