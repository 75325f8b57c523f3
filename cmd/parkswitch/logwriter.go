package main

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// logWriterMax bounds the log bytes waiting for a slow reader: about
	// two seconds of info lines at 3,000 calls/s.
	logWriterMax = 4 << 20
	// logWriterLinger is how long the writer lets lines gather after the
	// first wakes it. Woken for every line, it cost a thread wake-up per
	// line (three a call); this way a busy switch writes its log in at
	// most a hundred writes a second. A crash can lose that much of the
	// log; close writes everything.
	logWriterLinger = 10 * time.Millisecond
)

// logWriter is the process log's output: a call's goroutine hands its line
// over and goes on, and one goroutine writes what has gathered in one write.
// A log reader that stops (a full pipe, a stalled journal) therefore never
// stalls a call: once max bytes wait, further lines are dropped whole,
// counted, and reported through onDrop when the reader has caught up.
// A line is one Write, as zerolog makes it.
type logWriter struct {
	out    io.Writer
	max    int
	linger time.Duration
	onDrop func(lines uint64) // from the writing goroutine, after a batch that followed drops

	mu      sync.Mutex
	buf     []byte        // lines not yet written
	missed  uint64        // lines dropped since the last report
	closed  bool          // close was called: stop once all is written
	stopped bool          // run has returned: write through
	dropped atomic.Uint64 // every line dropped, for the metric

	wake    chan struct{}
	closing chan struct{} // closed by close: no more lingering
	done    chan struct{}
}

// newLogWriter makes the writer; lines wait until start.
func newLogWriter(out io.Writer, max int) *logWriter {
	return &logWriter{out: out, max: max, linger: logWriterLinger,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
}

// start starts the writing goroutine, which close stops. onDrop, if not
// nil, is told how many lines were dropped once the reader has caught up;
// it may log through this writer.
func (w *logWriter) start(onDrop func(lines uint64)) {
	w.onDrop = onDrop
	go w.run()
}

// Write queues a copy of p without waiting. Once the writer has stopped
// it writes through.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > w.max {
		w.missed++
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	w.mu.Unlock()
	w.poke()
	return len(p), nil
}

func (w *logWriter) poke() {
	select {
	case w.wake <- struct{}{}:
	default: // already woken: the writer takes this line with the others
	}
}

// run writes what gathered, one batch at a time, until close has been
// called and nothing is left.
func (w *logWriter) run() {
	defer close(w.done)
	var spare []byte
	for range w.wake {
		w.gather()
		for {
			w.mu.Lock()
			batch, missed, closed := w.buf, w.missed, w.closed
			if len(batch) == 0 && missed == 0 {
				w.stopped = closed
				w.mu.Unlock()
				if closed {
					return
				}
				break
			}
			w.buf, w.missed = spare[:0], 0
			w.mu.Unlock()
			if len(batch) > 0 {
				w.out.Write(batch) // nowhere to report a failed log write
			}
			// A batch that grew past the bound under a burst is not kept.
			if spare = batch; cap(spare) > w.max {
				spare = nil
			}
			if missed > 0 && w.onDrop != nil && !closed {
				w.onDrop(missed)
			}
		}
	}
}

// gather waits linger for more lines to join the one that woke the
// writer, or until close.
func (w *logWriter) gather() {
	if w.linger <= 0 {
		return
	}
	t := time.NewTimer(w.linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.closing:
	}
}

// close writes what is waiting and returns when it is written; later
// lines are written straight through. The writer must have been started.
func (w *logWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.closing)
	}
	w.mu.Unlock()
	w.poke()
	<-w.done
}
