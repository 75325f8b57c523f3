package notify

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
)

// Bounds of Follow's subscription to the store.
const (
	resubscribeMin = time.Second
	resubscribeMax = 30 * time.Second
)

// Follow hands n every event of src published by node from now on, until
// ctx ends or the store closes. With node "" it takes every node's; a
// cluster gives each node its own, so that each event is posted once, by
// the node where it happened. When the subscription ends or cannot be made
// (the store away) it subscribes again, with backoff, from after the last
// event it saw, so what the store kept meanwhile is not missed.
func Follow(ctx context.Context, src store.Events, node string, n *Notifier, log zerolog.Logger) {
	var next uint64 // 0: from now on
	wait := resubscribeMin
	warn := limiter{every: warnGap}
	for ctx.Err() == nil {
		events, err := src.SubscribeEvents(ctx, next)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
				return
			}
			if s, ok := warn.allow(time.Now()); ok {
				log.Warn().Err(err).Int("suppressed", s).Dur("retry_in", wait).Msg("webhooks: cannot follow the events; trying again")
			}
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, resubscribeMax)
			continue
		}
		got := false
		for e := range events {
			got = true
			if e.Seq > 0 {
				next = e.Seq + 1
			}
			if node == "" || e.Node == node {
				n.Notify(e)
			}
		}
		if got {
			wait = resubscribeMin
		}
		// Closed by the store (it closes, or lost the connection): pause
		// before the next try so a store that keeps closing costs nothing.
		if !sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, resubscribeMax)
	}
}
