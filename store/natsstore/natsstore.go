// Package natsstore implements the store seam on NATS JetStream: key-value
// buckets for registrations, orbits, dialogs and node heartbeats, streams
// for events and call records. Without URLs it runs a NATS server in
// process, with JetStream files in DataDir and no network port; with URLs
// it joins that cluster, and every node of the switch shares one state.
package natsstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
)

// Names of the buckets, streams and subjects. Events go out on
// EventSubject, so any NATS client can follow them: a message is one event
// or several, one JSON object a line, in the order they happened (the
// stream takes EventSubjectPrefix + anything, and messages stored before
// this form were one event each, on EventSubjectPrefix + its type). Call
// records are on RecordSubject in the same form.
const (
	BucketRegistrations = "parkswitch_registrations"
	BucketOrbits        = "parkswitch_orbits"
	BucketDialogs       = "parkswitch_dialogs"
	BucketNodes         = "parkswitch_nodes"
	StreamEvents        = "PARKSWITCH_EVENTS"
	StreamRecords       = "PARKSWITCH_CDR"
	EventSubjectPrefix  = "parkswitch.events."
	EventSubject        = EventSubjectPrefix + "log"
	RecordSubject       = "parkswitch.cdr"
)

// Defaults of Options.
const (
	DefaultOpTimeout    = 2 * time.Second
	DefaultHeartbeat    = time.Second
	DefaultNodeTTL      = 3 * time.Second
	DefaultEventsMaxAge = 24 * time.Hour
	DefaultEventsMax    = 1_000_000   // messages, each of up to 256 events
	DefaultEventsBytes  = 512 << 20   // and bytes on disk, oldest dropped first
	markerTTL           = time.Minute // how long delete and expiry markers stay
)

// Options configure Open.
type Options struct {
	DataDir  string   // JetStream files of the embedded server; required without URLs
	URLs     []string // an existing NATS cluster; empty: embedded server
	NodeID   string   // this node; must differ per node of a cluster
	NodeAddr string   // where other nodes reach this one over SIP, shown in ListNodes
	CDRDays  int      // call record retention in days; store.DefaultCDRDays when 0
	CDRBytes int64    // bound of the call records on disk, oldest dropped first; store.DefaultCDRMaxBytes when 0
	Logger   zerolog.Logger

	Replicas     int           // of every bucket and stream; 0: 1 embedded, 3 on a cluster of 3 or more servers
	OpTimeout    time.Duration // bound of one operation: past it the store is ErrUnavailable
	Heartbeat    time.Duration // interval of this node's heartbeat
	NodeTTL      time.Duration // a node whose heartbeat is this old is gone (whole seconds, ≥ 1 s)
	EventsMaxAge time.Duration // how long events are kept for replay
	EventsBytes  int64         // and the bound of them on disk, oldest dropped first; DefaultEventsBytes when 0

	inProcess  *server.Server // tests: connect in process to another store's embedded server
	keepLogger bool           // tests: Logger is set, do not replace it with the test's
}

func (o *Options) normalize() error {
	if o.NodeID == "" {
		return fmt.Errorf("natsstore: %w: a node ID is needed", store.ErrInvalid)
	}
	if len(o.URLs) == 0 && o.DataDir == "" && o.inProcess == nil {
		return fmt.Errorf("natsstore: %w: the embedded server needs a data directory", store.ErrInvalid)
	}
	if o.CDRDays <= 0 {
		o.CDRDays = store.DefaultCDRDays
	}
	if o.CDRBytes <= 0 {
		o.CDRBytes = store.DefaultCDRMaxBytes
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = DefaultNodeTTL
	}
	// Message TTLs are whole seconds on the server.
	o.NodeTTL = max(o.NodeTTL.Truncate(time.Second), time.Second)
	if o.Heartbeat >= o.NodeTTL {
		return fmt.Errorf("natsstore: %w: heartbeat %v must be shorter than the node TTL %v", store.ErrInvalid, o.Heartbeat, o.NodeTTL)
	}
	if o.EventsMaxAge <= 0 {
		o.EventsMaxAge = DefaultEventsMaxAge
	}
	if o.EventsBytes <= 0 {
		o.EventsBytes = DefaultEventsBytes
	}
	return nil
}

// Store is one node's connection to the shared state.
type Store struct {
	opts Options
	log  zerolog.Logger
	srv  *server.Server // the embedded server, nil on a cluster
	nc   *nats.Conn
	js   jetstream.JetStream
	acks *acks // AppendLog's pipelined publishes

	regs, orbits, dialogs, nodes *bucket
	events, records              jetstream.Stream
	replicas                     int
	started                      time.Time
	addr                         atomic.Pointer[string] // Node.Addr of the heartbeats
	reconnected                  signal                 // fires when the connection is back after a loss

	ctx    context.Context // cancelled by Close: ends subscriptions and the heartbeat
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	once   sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the state, starting the embedded server when
// opts.URLs is empty, makes the buckets and streams it lacks, and starts
// this node's heartbeat. It fails with store.ErrUnavailable when the store
// cannot be reached within the bounded connect time.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, log: opts.Logger.With().Str("component", "store").Logger(), started: time.Now()}
	s.addr.Store(&opts.NodeAddr)
	var err error
	if len(opts.URLs) == 0 && opts.inProcess == nil {
		s.srv, err = startEmbedded(opts, s.log)
		if err != nil {
			return nil, err
		}
	}
	if err := s.connect(ctx); err != nil {
		s.shutdownServer()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.setup(ctx); err != nil {
		s.cancel()
		s.nc.Close()
		s.shutdownServer()
		return nil, err
	}
	if err := s.beat(ctx); err != nil {
		s.cancel()
		s.nc.Close()
		s.shutdownServer()
		return nil, fmt.Errorf("natsstore: first heartbeat of %s: %w", opts.NodeID, err)
	}
	s.wg.Add(1)
	go s.heartbeat()
	s.log.Info().Bool("embedded", s.srv != nil).Int("replicas", s.replicas).Str("node", opts.NodeID).Msg("state store open")
	return s, nil
}

// startEmbedded runs a NATS server in process with JetStream on
// opts.DataDir and no listener: only this process can reach it.
func startEmbedded(opts Options, log zerolog.Logger) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "parkswitch-" + opts.NodeID,
		DontListen: true,
		JetStream:  true,
		StoreDir:   opts.DataDir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: embedded server on %s: %w", opts.DataDir, err)
	}
	srv.SetLoggerV2(serverLogger{log.With().Str("component", "nats").Logger()}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsstore: embedded server on %s did not start in 30 s", opts.DataDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsstore: embedded server on %s: JetStream is not enabled (see the log)", opts.DataDir)
	}
	return srv, nil
}

func (s *Store) connect(ctx context.Context) error {
	o := []nats.Option{
		nats.Name("parkswitch " + s.opts.NodeID),
		nats.Timeout(s.opts.OpTimeout),
		nats.MaxReconnects(-1), // a lost store comes back; never give up
		nats.ReconnectWait(250 * time.Millisecond),
		// Nothing is buffered while disconnected: an operation fails at
		// once with ErrUnavailable instead of being sent late.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !s.closed.Load() {
				s.log.Warn().Err(err).Msg("state store connection lost; operations fail until it returns")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.reconnected.fire()
			s.log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("state store connection back")
		}),
	}
	url := strings.Join(s.opts.URLs, ",")
	switch {
	case s.srv != nil:
		o = append(o, nats.InProcessServer(s.srv))
	case s.opts.inProcess != nil:
		o = append(o, nats.InProcessServer(s.opts.inProcess))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, o...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		if r := <-done; r.nc != nil { // nats.Connect is bounded by its Timeout per server
			r.nc.Close()
		}
		return fmt.Errorf("natsstore: connect to %s: %w", s.where(), ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("natsstore: connect to %s: %w: %w", s.where(), store.ErrUnavailable, r.err)
	}
	s.nc = r.nc
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.nc.Close()
		return fmt.Errorf("natsstore: JetStream on %s: %w", s.where(), err)
	}
	s.js = js
	if s.acks, err = newAcks(s.nc); err != nil {
		s.nc.Close()
		return err
	}
	return nil
}

func (s *Store) where() string {
	if s.srv != nil || s.opts.inProcess != nil {
		return "the embedded server"
	}
	urls := make([]string, len(s.opts.URLs))
	for i, u := range s.opts.URLs {
		urls[i] = redact(u)
	}
	return strings.Join(urls, ",")
}

// redact hides the password of a server URL: errors and logs never show it.
func redact(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		p.User = url.User("***")
		return p.String()
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		return "***" + u[i:]
	}
	return u
}

// setup makes or updates the buckets and streams.
func (s *Store) setup(ctx context.Context) error {
	s.replicas = s.opts.Replicas
	if s.replicas <= 0 {
		s.replicas = 1
		// The server pool holds the configured URLs and those the cluster
		// advertised: three or more servers can keep three copies.
		if len(s.opts.URLs) > 0 && len(s.nc.Servers()) >= 3 {
			s.replicas = 3
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second) // R3 creation waits for a leader election
	defer cancel()
	var err error
	if s.regs, err = s.bucket(ctx, BucketRegistrations, "parkswitch registrations; a key expires with its last binding"); err != nil {
		return err
	}
	if s.orbits, err = s.bucket(ctx, BucketOrbits, "parkswitch orbits and allocation cursors"); err != nil {
		return err
	}
	if s.dialogs, err = s.bucket(ctx, BucketDialogs, "parkswitch dialog snapshots"); err != nil {
		return err
	}
	// Heartbeats are on file too: a memory stream is gone after its
	// server restarts, and every heartbeat would then fail with "stream
	// not found" until a node opened the store again.
	if s.nodes, err = s.bucket(ctx, BucketNodes, "parkswitch node heartbeats"); err != nil {
		return err
	}
	s.events, err = s.stream(ctx, jetstream.StreamConfig{
		Name: StreamEvents, Description: "parkswitch events",
		Subjects: []string{EventSubjectPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: s.replicas,
		MaxAge: s.opts.EventsMaxAge, MaxMsgs: DefaultEventsMax, MaxBytes: s.opts.EventsBytes, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return err
	}
	s.records, err = s.stream(ctx, jetstream.StreamConfig{
		Name: StreamRecords, Description: "parkswitch call records",
		Subjects: []string{RecordSubject}, Storage: jetstream.FileStorage, Replicas: s.replicas,
		MaxAge: time.Duration(s.opts.CDRDays) * 24 * time.Hour, MaxBytes: s.opts.CDRBytes, Discard: jetstream.DiscardOld,
	})
	return err
}

// bucket creates (or updates) the key-value bucket name on file and opens it.
// The bucket's stream is made here rather than by the KV API so that reads
// of a replicated bucket go to the stream leader: a direct get may be
// answered by a lagging follower, and a node would then miss an orbit
// another node had just written (its claim failing on a revision it never
// saw).
func (s *Store) bucket(ctx context.Context, name, desc string) (*bucket, error) {
	err := s.forming(ctx, func() error {
		_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: "KV_" + name, Description: desc, Subjects: []string{"$KV." + name + ".>"},
			MaxMsgsPerSubject: 1, MaxMsgs: -1, MaxBytes: -1, MaxMsgSize: -1, MaxConsumers: -1,
			Storage: jetstream.FileStorage, Replicas: s.replicas, Discard: jetstream.DiscardNew,
			AllowRollup: true, DenyDelete: true, Duplicates: 2 * time.Minute,
			AllowDirect: s.replicas == 1,
			// Per-message TTLs (registrations, heartbeats) and markers that
			// expire, so deleted keys leave nothing behind for long.
			AllowMsgTTL: true, SubjectDeleteMarkerTTL: markerTTL,
		})
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "create bucket "+name, err)
	}
	b, err := s.js.KeyValue(ctx, name)
	if err != nil {
		return nil, s.fail(ctx, "open bucket "+name, err)
	}
	st, err := s.js.Stream(ctx, "KV_"+name)
	if err != nil {
		return nil, s.fail(ctx, "open the stream of bucket "+name, err)
	}
	return &bucket{s: s, name: name, kv: b, stream: st, subject: "$KV." + name + "."}, nil
}

// stream creates (or updates) a stream of events or records.
func (s *Store) stream(ctx context.Context, cfg jetstream.StreamConfig) (st jetstream.Stream, err error) {
	err = s.forming(ctx, func() (err error) {
		st, err = s.js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "create stream "+cfg.Name, err)
	}
	return st, nil
}

// forming runs fn again while the cluster is still forming (no meta
// leader yet, or not enough JetStream peers to place the replicas), until
// ctx ends: nodes and servers of a cluster often start together.
func (s *Store) forming(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		var api *jetstream.APIError
		if !errors.Is(err, nats.ErrNoResponders) && !(errors.As(err, &api) && (api.Code == 503 || api.ErrorCode == errNoSuitablePeers)) {
			return err
		}
		if attempt == 0 {
			s.log.Info().Err(err).Msg("waiting for the NATS cluster to form")
		}
		t := time.NewTimer(min(100*time.Millisecond<<min(attempt, 3), time.Second))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// Close says goodbye for this node, stops the heartbeat and every
// subscription, closes the connection and stops the embedded server.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		if s.nc.IsConnected() {
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.OpTimeout)
			if err := s.nodes.kv.Purge(ctx, nodeKey(s.opts.NodeID), jetstream.PurgeTTL(markerTTL)); err != nil {
				s.log.Warn().Err(err).Msg("node goodbye not recorded; it drops out when its heartbeat lapses")
			}
			cancel()
		}
		s.closed.Store(true)
		s.nc.Close()
		s.shutdownServer()
		s.log.Info().Str("node", s.opts.NodeID).Msg("state store closed")
	})
	return nil
}

// kill stops the node as a crash would: no goodbye, no heartbeat, the
// connection dropped. Tests of liveness use it.
func (s *Store) kill() {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.closed.Store(true)
		s.nc.Close()
		s.shutdownServer()
	})
}

func (s *Store) shutdownServer() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Replicas is the number of copies of each bucket and stream.
func (s *Store) Replicas() int { return s.replicas }

// Embedded reports whether the store runs its own server.
func (s *Store) Embedded() bool { return s.srv != nil }

// begin bounds one operation by the op timeout and fails fast when the
// store is closed or disconnected.
func (s *Store) begin(ctx context.Context, what string) (context.Context, context.CancelFunc, error) {
	if err := s.ready(ctx, what); err != nil {
		return nil, nil, err
	}
	c, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	return c, cancel, nil
}

// ready fails fast when the store is closed or disconnected. A list
// checks it alone: it bounds each of its requests by the op timeout
// instead, since it makes as many as it reads keys.
func (s *Store) ready(ctx context.Context, what string) error {
	if s.closed.Load() || s.ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("%s: %w: not connected to %s (%v)", what, store.ErrUnavailable, s.where(), s.nc.Status())
	}
	return nil
}

// fail wraps err of operation what: the caller's own cancellation as is,
// anything that means the store cannot be reached as ErrUnavailable.
func (s *Store) fail(ctx context.Context, what string, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unavailable(err error) bool {
	for _, e := range []error{
		context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionClosed,
		nats.ErrDisconnected, nats.ErrConnectionReconnecting, nats.ErrReconnectBufExceeded,
		nats.ErrNoServers, jetstream.ErrNoStreamResponse, jetstream.ErrJetStreamNotEnabled,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && api.Code == 503 // no leader, cluster not available
}

// serverLogger sends the embedded server's log lines to zerolog.
type serverLogger struct{ l zerolog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.l.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.l.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.l.Error().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.l.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.l.Trace().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.l.Trace().Msgf(format, v...) }

// errNoSuitablePeers is the server's JSClusterNoPeersErr: too few
// JetStream servers known yet to place the replicas.
const errNoSuitablePeers = 10005
