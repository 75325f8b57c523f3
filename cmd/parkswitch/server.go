package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/web"
	"github.com/parkswitch/parkswitch/configs"
	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/store"
)

// server is one running parkswitch: the SIP switch, its media port pool and
// the admin HTTP endpoint, wired from a configuration.
type server struct {
	cfg      *config.Config
	log      zerolog.Logger
	ports    *media.PortPool
	sw       *sip.Switch
	state    store.Store // closed after the switch
	registry *prometheus.Registry
	http     *http.Server
	api      *apiAuth // authentication in front of every admin handler
	httpLn   net.Listener
	httpDone chan struct{}
	streams  *eventStreams // GET /api/v1/events
	reloader *reloader
	webhooks *webhooks // notify.webhooks
	pprof    *profiler // debug.pprof_listen
	site     *web.Site // the park board and admin pages (pages.go)

	watchStop context.CancelFunc
	watchDone chan struct{}
}

// serverOptions adjust what the configuration cannot express; tests use
// them to bind ephemeral ports and shorten timers.
type serverOptions struct {
	sipListen  []config.Listen // replaces server.sip_listen when set
	httpListen string          // replaces server.http_listen when set; "-" disables HTTP
	heartbeat  time.Duration   // of the event stream; default eventHeartbeat
	tune       func(*sip.Options)
	logDropped func() uint64 // the process log's dropped lines, for the metric
}

func newServer(cfg *config.Config, log zerolog.Logger, o serverOptions) (*server, error) {
	listens := cfg.Server.SIPListen
	if o.sipListen != nil {
		listens = o.sipListen
	}
	sipListen, bindIP := sipListens(listens)
	advertise, err := advertiseIP(cfg.Server.AdvertiseIP)
	if err != nil {
		return nil, err
	}
	ports, err := media.NewPortPool(bindIP, cfg.Media.RTPPortMin, cfg.Media.RTPPortMax)
	if err != nil {
		return nil, fmt.Errorf("media ports: %w", err)
	}
	dir, err := directoryOf(cfg)
	if err != nil {
		return nil, err
	}
	music, err := loadMusic(cfg)
	if err != nil {
		return nil, err
	}
	prompts, err := loadPrompts(cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerMediaMetrics(reg, ports)
	if o.logDropped != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parkswitch_log_lines_dropped_total",
			Help: "Log lines dropped because the log's reader fell behind.",
		}, func() float64 { return float64(o.logDropped()) }))
	}
	opts := switchOptions(cfg, dir, ports, music)
	opts.Prompts = prompts
	opts.Listen, opts.AdvertiseIP, opts.Logger, opts.Registry = sipListen, advertise, log, reg
	if o.tune != nil {
		o.tune(&opts)
	}
	if opts.Store == nil {
		st, err := openState(cfg.State, nodeAddr(advertise, sipListen), log)
		if err != nil {
			return nil, err
		}
		opts.Store = st
	}
	hooks, err := newWebhooks(cfg.Notify, opts.Store, reg, log)
	if err != nil {
		opts.Store.Close()
		return nil, err
	}
	sw, err := sip.New(opts)
	if err != nil {
		hooks.close(context.Background())
		opts.Store.Close()
		return nil, err
	}
	s := &server{cfg: cfg, log: log, ports: ports, sw: sw, state: opts.Store, registry: reg, api: newAPIAuth(cfg.HTTP, log),
		streams: newEventStreams(o.heartbeat), webhooks: hooks}
	s.reloader = newReloader(s, reg)
	httpListen := cfg.Server.HTTPListen
	if o.httpListen != "" {
		httpListen = o.httpListen
	}
	if httpListen != "-" {
		s.site = s.newSite()
		s.http = &http.Server{Addr: httpListen, Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
	}
	return s, nil
}

// sipListens converts the listen addresses for the switch. RTP binds to
// the address of the first, so that media leaves where signaling does; a
// host name or no host binds every address.
func sipListens(listens []config.Listen) ([]sip.Listen, netip.Addr) {
	bindIP := netip.IPv4Unspecified()
	var out []sip.Listen
	for i, l := range listens {
		out = append(out, sip.Listen{Network: l.Network, Addr: l.Addr})
		if i == 0 {
			if host, _, err := net.SplitHostPort(l.Addr); err == nil {
				if ip, err := netip.ParseAddr(host); err == nil {
					bindIP = ip
				}
			}
		}
	}
	return out, bindIP
}

// advertiseIP parses server.advertise_ip; without one the switch picks the
// address to put in SIP and SDP itself.
func advertiseIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("advertise_ip: %w", err)
	}
	return ip, nil
}

// switchOptions is the configuration as the SIP switch takes it, but for
// the listen addresses, logger and registry newServer supplies.
func switchOptions(cfg *config.Config, dir *sip.Directory, ports *media.PortPool, music *media.MusicOnHold) sip.Options {
	opts := sip.Options{
		Domain:       cfg.Server.Domain,
		Directory:    dir,
		Ports:        ports,
		MediaTimeout: cfg.Media.RTPTimeout(),

		DigestAlgorithms: cfg.Server.DigestAlgorithms,
		BanAfter:         cfg.Security.BanAfter,
		BanWindow:        cfg.Security.BanWindow(),
		BanTime:          cfg.Security.BanTime(),
		RetrieveMisses:   cfg.Security.RetrieveMisses,
		OverloadWait:     cfg.Security.OverloadWait(),

		Policies:       cfg.Policies,
		ParkUser:       cfg.Park.ParkUser,
		RetrievePrefix: cfg.Park.RetrievePrefix,
		DTMFParkCode:   cfg.Park.DTMFCode,
		Park: park.Config{
			Ringback:     cfg.Park.Ringback(),
			MaxRingbacks: cfg.Park.MaxRingbacks,
			Fallback:     cfg.Park.Fallback,
		},
		Music: music,

		MaxConnections:      cfg.Security.MaxConnections,
		MaxConnectionsPerIP: cfg.Security.MaxConnectionsPerIP,
	}
	if c := cfg.Server.Certificate; c != nil {
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{*c}, MinVersion: tls.VersionTLS12}
	}
	return opts
}

// loadMusic reads the configured music on hold, or the built-in one.
func loadMusic(cfg *config.Config) (*media.MusicOnHold, error) {
	wav := configs.MusicOnHold
	if cfg.Media.MusicOnHold != "" {
		b, err := os.ReadFile(cfg.Media.MusicOnHold)
		if err != nil {
			return nil, fmt.Errorf("music_on_hold: %w", err)
		}
		wav = b
	}
	m, err := media.NewMusicOnHold(wav)
	if err != nil {
		return nil, fmt.Errorf("music_on_hold %s: %w", cfg.Media.MusicOnHold, err)
	}
	return m, nil
}

// loadPrompts builds what a parker hears after a park: the built-in
// prompts, each replaced by the one park.prompts_dir holds of its name
// (checked with the configuration); nil when park.announce is off.
func loadPrompts(cfg *config.Config) (*sip.Prompts, error) {
	if !cfg.Park.Announce {
		return nil, nil
	}
	get := func(name string) (*media.Prompt, error) {
		if p, ok := cfg.Prompts[name]; ok {
			return p, nil
		}
		b, err := configs.Prompts.ReadFile("prompts/" + name + ".wav")
		if err != nil {
			return nil, fmt.Errorf("built-in prompt %s: %w", name, err)
		}
		return media.NewPrompt(b)
	}
	ps := &sip.Prompts{}
	var err error
	if ps.ParkedAt, err = get(config.PromptNames[0]); err != nil {
		return nil, err
	}
	for i, name := range config.PromptNames[1:] {
		if ps.Digits[i], err = get(name); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// directoryOf turns configured users and trunks into the switch's directory.
func directoryOf(cfg *config.Config) (*sip.Directory, error) {
	users := make([]sip.User, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, sip.User{
			ID: u.ID, Name: u.Name(), Extension: u.Extension, DisplayName: u.DisplayName,
			Password: u.Password, HA1: u.HA1, HA1SHA256: u.HA1SHA256, Groups: u.Groups, Contact: u.Contact,
		})
	}
	trunks := make([]sip.Trunk, 0, len(cfg.Trunks))
	for _, t := range cfg.Trunks {
		ap, err := netip.ParseAddrPort(t.Address)
		if err != nil {
			return nil, fmt.Errorf("trunk %s: address %q: %w", t.Name, t.Address, err)
		}
		trunks = append(trunks, sip.Trunk{Name: t.Name, Address: ap, Transport: t.Transport, OutboundPrefix: t.OutboundPrefix})
	}
	return sip.NewDirectory(users, trunks), nil
}

// start binds SIP and HTTP and, for a configuration read from files,
// watches them for changes.
func (s *server) start() (err error) {
	if err := s.sw.Start(); err != nil {
		return err
	}
	if s.pprof, err = startProfiler(s.cfg.Debug.PprofListen, s.log); err != nil {
		s.sw.Shutdown(context.Background())
		return err
	}
	defer func() {
		if err == nil {
			s.webhooks.start()
		}
	}()
	if s.reloader.fromFile {
		w, err := s.reloader.newWatcher()
		if err != nil {
			s.log.Warn().Err(err).Msg("configuration files are not watched; reload with SIGHUP")
		} else {
			ctx, cancel := context.WithCancel(context.Background())
			s.watchStop, s.watchDone = cancel, make(chan struct{})
			go func() {
				defer close(s.watchDone)
				if err := s.reloader.watch(ctx, w); err != nil {
					s.log.Warn().Err(err).Msg("configuration watcher stopped; reload with SIGHUP")
				}
			}()
		}
	}
	if s.http == nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.http.Addr)
	if err != nil {
		s.pprof.close()
		s.sw.Shutdown(context.Background())
		return fmt.Errorf("http listen %s: %w", s.http.Addr, err)
	}
	s.httpLn = ln
	s.httpDone = make(chan struct{})
	go func() {
		defer close(s.httpDone)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	ev := s.log.Info().Str("http", ln.Addr().String())
	if !s.cfg.HTTP.Configured() {
		// Only allowed on loopback (config.Parse refuses it elsewhere).
		ev = ev.Bool("open", true)
	}
	ev.Msg("admin API listening")
	return nil
}

// httpAddr is the bound admin address ("" without HTTP).
func (s *server) httpAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// shutdown ends calls with BYE and stops everything, bounded by ctx.
func (s *server) shutdown(ctx context.Context) error {
	var errs []error
	if s.watchStop != nil {
		s.watchStop()
		<-s.watchDone
	}
	// Event streams never go idle: end them, or Shutdown waits for ctx.
	s.streams.stop()
	if s.http != nil && s.httpLn != nil {
		errs = append(errs, s.http.Shutdown(ctx))
		<-s.httpDone
	}
	s.pprof.close()
	errs = append(errs, s.sw.Shutdown(ctx))
	s.webhooks.close(ctx) // after the switch: the calls it ended are posted too
	errs = append(errs, s.state.Close())
	return errors.Join(errs...)
}

// routes is the admin HTTP API.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.serveHealthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/orbits", s.serveOrbits)
	mux.HandleFunc("GET /api/v1/policies", s.servePolicies)
	mux.HandleFunc("GET /api/v1/registrations", s.serveRegistrations)
	mux.HandleFunc("GET /api/v1/events", s.serveEvents)
	mux.HandleFunc("GET /api/v1/cdr", s.serveCDR)
	mux.HandleFunc("GET /api/v1/bans", s.serveBans)
	mux.HandleFunc("DELETE /api/v1/bans/{ip}", s.serveUnban)
	return mux
}

// serveHealthz answers ok, or 503 with every listener that cannot accept
// and a refused configuration reload.
func (s *server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	down := s.sw.ListenersDown()
	at, refused := s.reloader.status()
	if len(down) == 0 && refused == nil {
		fmt.Fprintln(w, "ok")
		return
	}
	// Monitoring must see both: a listener that cannot accept, and a
	// configuration change that is not in force.
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, l := range down {
		fmt.Fprintf(w, "listener %s is not accepting connections\n", l)
	}
	if refused != nil {
		fmt.Fprintf(w, "last configuration reload refused at %s:\n%s\n", at.UTC().Format(time.RFC3339), refused)
	}
}

// serveOrbits lists the parked calls of the whole cluster: this node's
// from its lot, which is current to the moment, and other nodes' from the
// state store. With the store away, this node's alone.
func (s *server) serveOrbits(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	writeJSON(w, s.orbits(ctx))
}

// orbits lists the parked calls of the whole cluster, as serveOrbits.
func (s *server) orbits(ctx context.Context) []park.OrbitInfo {
	lot := s.sw.Lot()
	out := lot.Orbits()
	if recs, err := s.state.ListOrbits(ctx, ""); err == nil {
		for _, o := range recs {
			if o.Owner != lot.Node() {
				out = append(out, park.InfoOf(o))
			}
		}
		park.SortInfos(out)
	} else {
		s.log.Debug().Err(err).Msg("orbits of other nodes not listed")
	}
	if out == nil {
		out = []park.OrbitInfo{}
	}
	return out
}

// servePolicies lists the call park policies in force and their grants.
func (s *server) servePolicies(w http.ResponseWriter, _ *http.Request) {
	set := s.sw.Policies()
	type groupGrant struct {
		Group  string `json:"group"`
		Policy string `json:"policy"`
		Rank   int    `json:"rank"`
	}
	type userGrant struct {
		User   string `json:"user"`
		Policy string `json:"policy"`
	}
	out := struct {
		Policies []policy.Policy `json:"policies"`
		Users    []userGrant     `json:"user_grants"`
		Groups   []groupGrant    `json:"group_grants"`
	}{Policies: set.Policies(), Users: []userGrant{}, Groups: []groupGrant{}}
	for _, g := range set.UserGrants() {
		out.Users = append(out.Users, userGrant{User: g.User, Policy: g.Policy})
	}
	for _, g := range set.GroupGrants() {
		out.Groups = append(out.Groups, groupGrant{Group: g.Group, Policy: g.Policy, Rank: g.Rank})
	}
	writeJSON(w, out)
}

// serveRegistrations lists the registered contacts of every node and the
// static ones.
func (s *server) serveRegistrations(w http.ResponseWriter, _ *http.Request) {
	type registration struct {
		User      string     `json:"user"`
		Contact   string     `json:"contact"`
		Source    string     `json:"source"`
		Transport string     `json:"transport"`
		Expires   *time.Time `json:"expires,omitempty"`
		UserAgent string     `json:"user_agent,omitempty"`
		Static    bool       `json:"static"`
		Node      string     `json:"node,omitempty"` // node holding the phone's flow
	}
	out := []registration{}
	for _, b := range s.sw.Registrations() {
		r := registration{User: b.User, Contact: b.Contact.String(), Source: b.Source,
			Transport: strings.ToLower(b.Transport), UserAgent: b.UserAgent, Static: b.Static, Node: b.Node}
		if !b.Expires.IsZero() {
			e := b.Expires.UTC()
			r.Expires = &e
		}
		out = append(out, r)
	}
	writeJSON(w, out)
}

// serveBans lists the source addresses banned now.
func (s *server) serveBans(w http.ResponseWriter, _ *http.Request) {
	type banJSON struct {
		IP       string    `json:"ip"`
		Since    time.Time `json:"since"`
		Until    time.Time `json:"until"`
		Failures int       `json:"failures"`
	}
	out := []banJSON{}
	for _, b := range s.sw.Bans() {
		out = append(out, banJSON{IP: b.IP.String(), Since: b.Since.UTC(), Until: b.Until.UTC(), Failures: b.Failures})
	}
	writeJSON(w, out)
}

// serveUnban lifts the ban on the address in the path.
func (s *server) serveUnban(w http.ResponseWriter, r *http.Request) {
	ip, err := netip.ParseAddr(r.PathValue("ip"))
	if err != nil {
		http.Error(w, "not an IP address: "+r.PathValue("ip"), http.StatusBadRequest)
		return
	}
	if !s.sw.Unban(ip) {
		http.Error(w, ip.String()+" is not banned", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// registerMediaMetrics exposes the relay's counters.
func registerMediaMetrics(reg prometheus.Registerer, ports *media.PortPool) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parkswitch_rtp_packets_relayed_total", Help: "RTP and RTCP packets relayed.",
		}, func() float64 { return float64(media.RelayedPackets()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parkswitch_rtp_packets_dropped_total", Help: "RTP and RTCP packets received and not relayed.",
		}, func() float64 { return float64(media.DroppedPackets()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_rtp_ports_in_use", Help: "RTP/RTCP port pairs allocated.",
		}, func() float64 { return float64(ports.InUse()) }),
	)
}
