package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func flushed(t *testing.T, w *WriteBehind) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !w.Flush(ctx) {
		t.Fatalf("%d writes still pending", w.Pending())
	}
}

func TestWriteBehindLatestWins(t *testing.T) {
	w := newWriteBehind(zerolog.Nop(), 0, 10*time.Millisecond)
	defer w.Close()
	var mu sync.Mutex
	got := map[string]int{}
	block := make(chan struct{})
	w.Queue("gate", func(context.Context) error { <-block; return nil })
	for i := 1; i <= 100; i++ {
		w.Queue("k", func(context.Context) error { mu.Lock(); got["k"] = i; mu.Unlock(); return nil })
	}
	close(block)
	flushed(t, w)
	if got["k"] != 100 {
		t.Errorf("k = %d, want the latest write (100)", got["k"])
	}
}

func TestWriteBehindRetriesUnavailable(t *testing.T) {
	w := newWriteBehind(zerolog.Nop(), 0, 10*time.Millisecond)
	defer w.Close()
	var calls, other atomic.Int32
	w.Queue("away", func(context.Context) error {
		if calls.Add(1) < 3 {
			return ErrUnavailable
		}
		return nil
	})
	w.Queue("bad", func(context.Context) error { other.Add(1); return errors.New("corrupt") })
	flushed(t, w)
	if calls.Load() != 3 {
		t.Errorf("unavailable write tried %d times, want 3", calls.Load())
	}
	if other.Load() != 1 {
		t.Errorf("failing write tried %d times, want once (dropped)", other.Load())
	}
}

func TestWriteBehindBounded(t *testing.T) {
	var logged bytes.Buffer
	w := newWriteBehind(zerolog.New(&logged), 2, time.Hour)
	defer w.Close()
	block := make(chan struct{})
	defer close(block)
	wait := func(context.Context) error { <-block; return nil }
	if !w.Queue("a", wait) || !w.Queue("b", wait) {
		t.Fatal("first two refused")
	}
	if w.Queue("c", wait) {
		t.Error("third key accepted past max")
	}
	if !w.Queue("b", wait) {
		t.Error("a pending key refused: replacing it takes no room")
	}
	if w.Queue("d", wait) {
		t.Error("fourth key accepted past max")
	}
	if w.Dropped() != 2 {
		t.Errorf("dropped = %d, want 2", w.Dropped())
	}
	// Two drops within the log interval: one line, not one per write.
	if n := strings.Count(logged.String(), "writes dropped"); n != 1 {
		t.Errorf("%d log lines for 2 drops, want 1:\n%s", n, logged.String())
	}
}

func TestWriteBehindReplacedWhileRunning(t *testing.T) {
	w := newWriteBehind(zerolog.Nop(), 0, time.Hour)
	defer w.Close()
	started, release := make(chan struct{}), make(chan struct{})
	var second atomic.Bool
	w.Queue("k", func(context.Context) error { close(started); <-release; return nil })
	<-started
	w.Queue("k", func(context.Context) error { second.Store(true); return nil })
	close(release)
	flushed(t, w)
	if !second.Load() {
		t.Error("the write queued while the first ran was lost")
	}
}

func TestWriteBehindCloseStops(t *testing.T) {
	w := newWriteBehind(zerolog.Nop(), 0, 10*time.Millisecond)
	w.Queue("away", func(context.Context) error { return ErrUnavailable })
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop a writer retrying an unavailable store")
	}
}
