package main

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/notify"
	"github.com/parkswitch/parkswitch/store"
)

// webhooks posts the events of this node to notify.webhooks (SPEC §12).
// It reads them back from the store's event log, as GET /api/v1/events
// does, so the SIP path only ever queues an event for the store; each node
// of a cluster posts the events it published, so each is posted once.
type webhooks struct {
	n    *notify.Notifier
	src  store.Events
	node string
	log  zerolog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc // of the follower, nil until one runs
	done   chan struct{}
	closed bool
}

func newWebhooks(cfg config.Notify, st store.Store, reg prometheus.Registerer, log zerolog.Logger) (*webhooks, error) {
	log = log.With().Str("component", "webhooks").Logger()
	n, err := notify.New(cfg.NotifyWebhooks(), notify.Options{Logger: log, Registry: reg})
	if err != nil {
		return nil, err
	}
	return &webhooks{n: n, src: st, node: st.NodeID(), log: log}, nil
}

// start follows the event log once there is a webhook to post to; a
// server without any subscribes to nothing.
func (w *webhooks) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.cancel != nil || w.n.Len() == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		notify.Follow(ctx, w.src, w.node, w.n, w.log)
	}()
	w.log.Info().Int("webhooks", w.n.Len()).Msg("posting park events to webhooks")
}

// apply puts a reloaded notify section in force; queued events of
// replaced webhooks are still delivered to them.
func (w *webhooks) apply(cfg config.Notify) {
	changed, err := w.n.SetWebhooks(cfg.NotifyWebhooks())
	if err != nil {
		// The configuration was validated: only a bug gets here.
		w.log.Error().Err(err).Msg("webhooks not reloaded: the previous ones stay in force")
		return
	}
	if changed {
		w.log.Info().Int("webhooks", len(cfg.Webhooks)).Msg("webhooks reloaded")
		w.start()
	}
}

// close stops following and lets the queues drain, bounded by ctx and
// notify.DefaultFlush.
func (w *webhooks) close(ctx context.Context) {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.closed = true
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	w.n.Close(ctx)
}
