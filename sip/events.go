package sip

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
)

// Bounds of the event queue.
const (
	eventQueueLen = 4096                  // events and call records waiting for the store
	eventOpLimit  = 5 * time.Second       // one batch, whatever the store's own bound
	eventBatch    = 128                   // entries written in one round at most
	eventLinger   = 10 * time.Millisecond // how long a batch waits for more before it is written
	eventFlush    = 5 * time.Second       // how long Shutdown lets the queue drain
	eventWarnGap  = 10 * time.Second      // at most one warning of each kind per gap
)

// Labels of the event queue's metrics.
const (
	kindEvent  = "event"
	kindRecord = "call_record"
)

// eventSink is the part of the store the queue writes to.
type eventSink interface {
	store.Events
	store.Records
}

// eventQueue carries events and call records to the store from one
// goroutine, in the order they were queued, so that the SIP path never
// waits for the store: queuing never blocks, a full queue drops, and a
// write the store refuses is counted and not retried.
type eventQueue struct {
	sink   eventSink
	log    zerolog.Logger
	q      chan queued
	flush  time.Duration // how long close lets the queue drain
	linger time.Duration // how long a batch waits for more entries

	mu      sync.RWMutex // write-held only by close, so nothing is queued after the drain
	closed  bool
	started bool
	stop    chan struct{} // closed by close: drain, then return
	done    chan struct{} // closed when run returns
	ctx     context.Context
	cancel  context.CancelFunc // aborts writes once the flush is over

	entries []store.LogEntry // the batch being written; only the writer touches it

	published, dropped, failed *prometheus.CounterVec
	dropWarn, failWarn         logLimiter
}

// queued is an event or, when rec is set, a call record.
type queued struct {
	ev  store.Event
	rec *store.CallRecord
}

func (it queued) kind() string {
	if it.rec != nil {
		return kindRecord
	}
	return kindEvent
}

func newEventQueue(sink eventSink, log zerolog.Logger, reg prometheus.Registerer, size int) *eventQueue {
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind"})
		c.WithLabelValues(kindEvent) // shown at 0 from the start
		c.WithLabelValues(kindRecord)
		return c
	}
	q := &eventQueue{
		sink:      sink,
		log:       log,
		q:         make(chan queued, size),
		flush:     eventFlush,
		linger:    eventLinger,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		published: counter("parkswitch_events_published_total", "Events and call records written to the store, by kind."),
		dropped:   counter("parkswitch_events_dropped_total", "Events and call records dropped because the queue to the store was full or closed, by kind."),
		failed:    counter("parkswitch_events_failed_total", "Events and call records the store refused or did not take in time, by kind."),
		dropWarn:  logLimiter{every: eventWarnGap, burst: 1},
		failWarn:  logLimiter{every: eventWarnGap, burst: 1},
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	if reg != nil {
		reg.MustRegister(q.published, q.dropped, q.failed)
	}
	return q
}

// event queues e.
func (q *eventQueue) event(e store.Event) { q.put(queued{ev: e}) }

// record queues r.
func (q *eventQueue) record(r store.CallRecord) { q.put(queued{rec: &r}) }

// put queues it without waiting; a full or closed queue drops it.
func (q *eventQueue) put(it queued) {
	q.mu.RLock()
	closed, queued := q.closed, false
	if !closed {
		select {
		case q.q <- it:
			queued = true
		default:
		}
	}
	q.mu.RUnlock()
	if queued {
		return
	}
	q.dropped.WithLabelValues(it.kind()).Inc()
	if closed {
		// Only a call ending in a race with shutdown gets here.
		q.log.Debug().Str("kind", it.kind()).Msg("event queue closed: dropped")
		return
	}
	if n, ok := q.dropWarn.allow(time.Now()); ok {
		q.log.Warn().Str("kind", it.kind()).Int("queue", cap(q.q)).Int("suppressed", n).
			Msg("event queue to the store is full: dropped")
	}
}

// start runs the writer in a goroutine counted in wg, once.
func (q *eventQueue) start(wg *sync.WaitGroup) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.closed {
		return
	}
	q.started = true
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.run()
	}()
}

// run writes what is queued until close: a batch is what has queued up
// while the last one was written, or within eventLinger of its first
// entry, so a busy switch pays the store one round trip per batch rather
// than per event.
func (q *eventQueue) run() {
	defer close(q.done)
	batch := make([]queued, 0, eventBatch)
	linger := time.NewTimer(q.linger)
	linger.Stop()
	defer linger.Stop()
	for {
		select {
		case it := <-q.q:
			batch = q.take(append(batch[:0], it))
			if len(batch) < eventBatch {
				linger.Reset(q.linger)
				select {
				case <-linger.C:
				case <-q.stop:
					linger.Stop()
				}
				batch = q.take(batch)
			}
			q.write(batch)
			clear(batch)
		case <-q.stop:
			q.drain()
			return
		}
	}
}

// take adds to batch what is queued, up to eventBatch, without waiting.
func (q *eventQueue) take(batch []queued) []queued {
	for len(batch) < eventBatch {
		select {
		case it := <-q.q:
			batch = append(batch, it)
		default:
			return batch
		}
	}
	return batch
}

// drain writes what is still queued, or counts it dropped once the flush
// time is over.
func (q *eventQueue) drain() {
	lost := 0
	batch := make([]queued, 0, eventBatch)
	for {
		batch = q.take(batch[:0])
		if len(batch) == 0 {
			if lost > 0 {
				q.log.Warn().Int("dropped", lost).Msg("events not written to the store before shutdown")
			}
			return
		}
		lost += q.write(batch)
	}
}

// write writes a batch and counts each entry written or failed; once close
// has given up on the store it drops the batch instead, and returns how
// many it dropped.
func (q *eventQueue) write(batch []queued) (dropped int) {
	if q.ctx.Err() != nil {
		for _, it := range batch {
			q.dropped.WithLabelValues(it.kind()).Inc()
		}
		return len(batch)
	}
	ctx, cancel := context.WithTimeout(q.ctx, eventOpLimit)
	defer cancel()
	entries := q.entries[:0]
	for _, it := range batch {
		entries = append(entries, store.LogEntry{Event: it.ev, Record: it.rec})
	}
	defer func() { q.entries = entries[:0]; clear(entries) }()
	for i, err := range store.AppendLog(ctx, q.sink, entries) {
		it := batch[i]
		if err == nil {
			q.published.WithLabelValues(it.kind()).Inc()
			continue
		}
		q.failed.WithLabelValues(it.kind()).Inc()
		if n, ok := q.failWarn.allow(time.Now()); ok {
			ev := q.log.Warn().Err(err).Str("kind", it.kind()).Int("suppressed", n)
			if it.rec != nil {
				ev = ev.Str("call_id", it.rec.CallID)
			} else {
				ev = ev.Str("call_id", it.ev.CallID).Str("type", string(it.ev.Type))
			}
			ev.Msg("event not written to the store")
		}
	}
	return 0
}

// close stops queuing and lets the writer write what is queued for up to
// q.flush or until ctx ends, then aborts the writes left; it returns
// once the writer has (at once when it never started).
func (q *eventQueue) close(ctx context.Context) {
	q.mu.Lock()
	was, started := q.closed, q.started
	q.closed = true
	q.mu.Unlock()
	if was {
		return
	}
	close(q.stop)
	if !started {
		q.cancel()
		return
	}
	t := time.NewTimer(q.flush)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
	case <-ctx.Done():
	}
	q.cancel()
	<-q.done
}
