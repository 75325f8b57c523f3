package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// WriteBehind applies writes to the store off the caller's path, one
// goroutine for all of them, keeping only the latest write per key: a
// write queued for a key replaces the one still pending for it. A write
// that fails with ErrUnavailable stays queued and is tried again every
// retry interval, so that what changed while the store was away reaches it
// when it returns; any other error drops the write with a log line.
//
// Writes for different keys may be applied in any order; one key's are
// applied in order, since only the latest is kept. A write runs its
// function when applied, so it should read the state it writes then, not
// when queued.
type WriteBehind struct {
	log     zerolog.Logger
	max     int
	retry   time.Duration
	timeout time.Duration

	mu       sync.Mutex
	pending  map[string]pendingWrite
	order    []string // keys in the order first queued, for fairness
	gen      uint64
	wake     chan struct{}
	dropped  int
	logged   time.Time // when a drop was last logged
	unlogged int       // drops since then

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// Defaults of NewWriteBehind.
const (
	DefaultWriteBehindMax = 65536
	dropLogEvery          = 10 * time.Second
	writeRetry            = time.Second
	writeTimeout          = 5 * time.Second
)

type pendingWrite struct {
	write func(context.Context) error
	gen   uint64 // tells a write from the one that replaced it
}

// NewWriteBehind starts a writer holding at most max pending keys
// (DefaultWriteBehindMax when max ≤ 0). Close stops it.
func NewWriteBehind(log zerolog.Logger, max int) *WriteBehind {
	return newWriteBehind(log, max, writeRetry)
}

func newWriteBehind(log zerolog.Logger, max int, retry time.Duration) *WriteBehind {
	if max <= 0 {
		max = DefaultWriteBehindMax
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &WriteBehind{
		log: log, max: max, retry: retry, timeout: writeTimeout,
		pending: make(map[string]pendingWrite),
		wake:    make(chan struct{}, 1),
		ctx:     ctx, cancel: cancel, done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Queue schedules write for key, replacing a pending write of key. It
// reports false when max keys are pending already and key is not one of
// them: the write is dropped and counted.
func (w *WriteBehind) Queue(key string, write func(context.Context) error) bool {
	w.mu.Lock()
	if _, ok := w.pending[key]; !ok {
		if len(w.pending) >= w.max {
			w.dropLocked()
			w.mu.Unlock()
			return false
		}
		w.order = append(w.order, key)
	}
	w.gen++
	w.pending[key] = pendingWrite{write, w.gen}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// dropLocked counts a refused write and logs it, once per dropLogEvery
// with the number refused since, so that a store away under load costs
// one log line, not one per write. It needs w.mu.
func (w *WriteBehind) dropLocked() {
	w.dropped++
	w.unlogged++
	now := time.Now()
	if !w.logged.IsZero() && now.Sub(w.logged) < dropLogEvery {
		return
	}
	w.log.Warn().Int("dropped", w.unlogged).Int("pending", len(w.pending)).
		Msg("state store: write queue full, writes dropped")
	w.logged, w.unlogged = now, 0
}

// Pending is the number of keys waiting to be written.
func (w *WriteBehind) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// Dropped is the number of writes refused because the queue was full.
func (w *WriteBehind) Dropped() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Flush waits until nothing is pending or ctx is done, and reports
// whether nothing is.
func (w *WriteBehind) Flush(ctx context.Context) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for w.Pending() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Close stops the writer; writes still pending are abandoned (they were
// either applied or the store is away, and a restarted node rebuilds them).
func (w *WriteBehind) Close() {
	w.cancel()
	<-w.done
}

func (w *WriteBehind) run() {
	defer close(w.done)
	retry := time.NewTimer(w.retry)
	defer retry.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		case <-retry.C:
		}
		if w.drain() {
			retry.Reset(w.retry)
		}
	}
}

// drain applies every pending write once and reports whether some are
// left for a retry (the store was unavailable).
func (w *WriteBehind) drain() (left bool) {
	w.mu.Lock()
	keys := w.order
	w.order = nil
	w.mu.Unlock()
	var again []string
	for i, key := range keys {
		if w.ctx.Err() != nil {
			again = append(again, keys[i:]...)
			break
		}
		w.mu.Lock()
		p, ok := w.pending[key]
		w.mu.Unlock()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(w.ctx, w.timeout)
		err := p.write(ctx)
		cancel()
		w.mu.Lock()
		switch {
		case w.pending[key].gen != p.gen:
			// Queued again while it ran: the newer write runs next pass
			// (Queue has woken the writer).
			w.order = append(w.order, key)
		case errors.Is(err, ErrUnavailable) || (err != nil && w.ctx.Err() != nil):
			again = append(again, key)
		default:
			delete(w.pending, key)
			if err != nil {
				w.log.Warn().Err(err).Str("key", key).Msg("state write dropped")
			}
		}
		w.mu.Unlock()
	}
	if len(again) == 0 {
		return false
	}
	w.mu.Lock()
	w.order = append(again, w.order...)
	w.mu.Unlock()
	return true
}
