// Package notify posts what happens to parked calls to chat channels and
// other HTTP receivers: the webhooks of SPEC §12 (notify.webhooks). Each
// event becomes one POST per webhook, in the webhook's format (plain JSON,
// Slack, Microsoft Teams, Mattermost), signed with HMAC-SHA256 when the
// webhook has a secret, retried with backoff.
//
// Nothing here runs on the SIP path: the switch publishes events to the
// store off that path already, Follow reads them back from the store, and
// Notifier.Notify only queues, never waiting. Each webhook has its own
// bounded queue and one worker, so a slow receiver holds back only itself.
//
// The package imports no package of the project but store, for its Event
// type and the Events interface it follows, so that the formats and the
// delivery can be tested against a plain HTTP receiver.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
)

// Errors of the package; delivery errors wrap one of the last three.
var (
	ErrFormat      = errors.New("notify: unknown format")
	ErrURL         = errors.New("notify: webhook URL must be http:// or https:// with a host")
	ErrTooMany     = errors.New("notify: too many webhooks")
	ErrUnreachable = errors.New("notify: receiver not reached")    // network, timeout: retried
	ErrRetryLater  = errors.New("notify: receiver asked to retry") // 5xx, 429, 408: retried
	ErrRefused     = errors.New("notify: receiver refused")        // other statuses, redirects: not retried
)

// MaxWebhooks bounds notify.webhooks: each has a queue, a worker and its
// own metric series.
const MaxWebhooks = 32

// Defaults of Options.
const (
	DefaultQueueLen   = 256
	DefaultAttempts   = 5
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = time.Minute // also the longest Retry-After honoured
	DefaultTimeout    = 10 * time.Second
	DefaultFlush      = 5 * time.Second
	warnGap           = 10 * time.Second // at most one warning of each kind per webhook per gap
)

// Webhook is one receiver.
type Webhook struct {
	URL      string // where to POST; it often holds a secret token, so it is never logged whole
	Format   Format
	Events   []store.EventType // what it is sent; empty: ParkEvents
	Secret   string            // HMAC-SHA256 key of X-Parkswitch-Signature; "" sends none
	Username string            // Mattermost and Slack: the name posts appear under
}

// Options tune a Notifier; zero values take the defaults above.
type Options struct {
	Logger     zerolog.Logger
	Registry   prometheus.Registerer // where the metrics go; nil: nowhere
	QueueLen   int                   // events waiting per webhook
	Attempts   int                   // tries of one event before it is given up
	Backoff    time.Duration         // wait before the second try; doubles each try, with jitter
	MaxBackoff time.Duration         // longest wait between tries, Retry-After included
	Timeout    time.Duration         // one try, connection to last byte of the answer
	Flush      time.Duration         // how long Close lets the queues drain
	Now        func() time.Time      // reads Retry-After dates; time.Now when nil
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueLen, DefaultQueueLen)
	def(&o.Attempts, DefaultAttempts)
	dur(&o.Backoff, DefaultBackoff)
	dur(&o.MaxBackoff, DefaultMaxBackoff)
	dur(&o.Timeout, DefaultTimeout)
	dur(&o.Flush, DefaultFlush)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Results of parkswitch_webhook_deliveries_total.
const (
	resultDelivered = "delivered"
	resultFailed    = "failed"  // given up after the tries, or refused
	resultDropped   = "dropped" // queue full, or still queued when shutdown's flush ended
)

// Notifier delivers events to a set of webhooks, which SetWebhooks
// replaces while it runs.
type Notifier struct {
	o         Options
	log       zerolog.Logger
	client    *http.Client
	transport *http.Transport

	deliveries *prometheus.CounterVec
	info       *prometheus.GaugeVec

	mu     sync.RWMutex
	hooks  []*hook
	cfg    []Webhook // what hooks were built from
	closed bool
	wg     sync.WaitGroup // every worker, and the stopping of replaced sets
}

// New returns a Notifier posting to hooks; an invalid webhook is an
// error and nothing starts.
func New(hooks []Webhook, o Options) (*Notifier, error) {
	o = o.withDefaults()
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: min(o.Timeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    min(o.Timeout, 5*time.Second),
		ResponseHeaderTimeout:  o.Timeout,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
	}
	n := &Notifier{
		o: o, log: o.Logger, transport: tr,
		client: &http.Client{
			Transport: tr,
			Timeout:   o.Timeout,
			// A webhook URL is the receiver: a redirect is not followed
			// (it could lead the signed body anywhere), it is a refusal.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkswitch_webhook_deliveries_total",
			Help: "Events posted to webhooks, by webhook (its position in notify.webhooks) and result: delivered, failed (refused or given up after the tries), dropped (queue full or shutdown).",
		}, []string{"webhook", "result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parkswitch_webhook_info",
			Help: "1 for each configured webhook: its position in notify.webhooks, the host it posts to and its format.",
		}, []string{"webhook", "host", "format"}),
	}
	if o.Registry != nil {
		o.Registry.MustRegister(n.deliveries, n.info)
	}
	if _, err := n.SetWebhooks(hooks); err != nil {
		return nil, err
	}
	return n, nil
}

// SetWebhooks replaces the webhooks when they differ from those in force
// and reports whether it did. Events queued for the old ones are still
// delivered, for up to Options.Flush, by their own workers.
func (n *Notifier) SetWebhooks(cfg []Webhook) (bool, error) {
	if len(cfg) > MaxWebhooks {
		return false, fmt.Errorf("%w: %d listed, at most %d", ErrTooMany, len(cfg), MaxWebhooks)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false, nil
	}
	if n.hooks != nil && slices.EqualFunc(cfg, n.cfg, equalWebhook) {
		return false, nil
	}
	hooks := make([]*hook, 0, len(cfg))
	for i, w := range cfg {
		h, err := n.newHook(i, w)
		if err != nil {
			for _, h := range hooks {
				h.cancel()
			}
			return false, err
		}
		hooks = append(hooks, h)
	}
	old := n.hooks
	n.hooks, n.cfg = hooks, slices.Clone(cfg)
	n.info.Reset()
	for _, h := range hooks {
		n.info.WithLabelValues(h.label, h.host, string(h.cfg.Format)).Set(1)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			h.run()
		}()
	}
	if len(old) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			stopHooks(context.Background(), old, n.o.Flush)
		}()
	}
	return true, nil
}

func equalWebhook(a, b Webhook) bool {
	return a.URL == b.URL && a.Format == b.Format && a.Secret == b.Secret && a.Username == b.Username &&
		slices.Equal(a.Events, b.Events)
}

// Len is the number of webhooks in force.
func (n *Notifier) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.hooks)
}

// Notify queues e for every webhook that wants its type. It never waits:
// a full queue drops its oldest event.
func (n *Notifier) Notify(e store.Event) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, h := range n.hooks {
		if !h.want[e.Type] {
			continue
		}
		if dropped := h.q.push(e); dropped > 0 {
			h.count(resultDropped, dropped)
			if s, ok := h.dropWarn.allow(n.o.Now()); ok {
				h.log.Warn().Int("queue", n.o.QueueLen).Int("suppressed", s).Str("type", string(e.Type)).
					Msg("webhook queue full: the oldest event was dropped")
			}
		}
	}
}

// Close stops queuing and lets the workers deliver what is queued for up
// to Options.Flush, or until ctx ends; then it aborts the posts in flight
// and counts what is left as dropped. It returns once every worker has.
func (n *Notifier) Close(ctx context.Context) {
	n.mu.Lock()
	hooks, was := n.hooks, n.closed
	n.closed, n.hooks = true, nil
	n.mu.Unlock()
	if was {
		return
	}
	stopHooks(ctx, hooks, n.o.Flush)
	n.wg.Wait()
	n.transport.CloseIdleConnections()
}

// stopHooks closes the hooks' queues, waits up to flush (or ctx) for the
// workers to empty them, then aborts them and waits for them to return.
func stopHooks(ctx context.Context, hooks []*hook, flush time.Duration) {
	for _, h := range hooks {
		h.q.close()
	}
	t := time.NewTimer(flush)
	defer t.Stop()
	for _, h := range hooks {
		select {
		case <-h.done:
		case <-t.C:
			t.Reset(0) // over: the rest are aborted at once
		case <-ctx.Done():
		}
		h.cancel()
		<-h.done
	}
}

// newHook checks w and builds its queue; its worker is not started.
func (n *Notifier) newHook(i int, w Webhook) (*hook, error) {
	if !w.Format.Valid() {
		return nil, fmt.Errorf("webhook %d: %w: %q", i, ErrFormat, w.Format)
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("webhook %d: %w", i, ErrURL)
	}
	events := w.Events
	if len(events) == 0 {
		events = ParkEvents
	}
	want := make(map[store.EventType]bool, len(events))
	for _, t := range events {
		want[t] = true
	}
	label := strconv.Itoa(i)
	h := &hook{
		n: n, cfg: w, label: label, host: u.Host, want: want,
		q:        newQueue(n.o.QueueLen),
		done:     make(chan struct{}),
		dropWarn: limiter{every: warnGap}, failWarn: limiter{every: warnGap},
	}
	h.log = n.log.With().Str("webhook", label).Str("host", u.Host).Str("format", string(w.Format)).Logger()
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for _, r := range []string{resultDelivered, resultFailed, resultDropped} {
		n.deliveries.WithLabelValues(label, r) // shown at 0 from the start
	}
	return h, nil
}

// limiter lets one warning through per gap and counts those it held back.
type limiter struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many were suppressed since the
// last one logged.
func (l *limiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}
