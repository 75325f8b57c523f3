package main

import (
	"io"
	"sync"
	"sync/atomic"
)

// logWriterMax bounds the log bytes waiting for a slow reader: about two
// seconds of info lines at 3,000 calls/s.
const logWriterMax = 4 << 20

// logWriter is the process log's output: a call's goroutine hands its line
// over and goes on, and one goroutine writes what has gathered in one write.
// A log reader that stops (a full pipe, a stalled journal) therefore never
// stalls a call: once max bytes wait, further lines are dropped whole,
// counted, and reported through onDrop when the reader has caught up.
// A line is one Write, as zerolog makes it.
type logWriter struct {
	out    io.Writer
	max    int
	onDrop func(lines uint64) // from the writing goroutine, after a batch that followed drops

	mu      sync.Mutex
	buf     []byte        // lines not yet written
	missed  uint64        // lines dropped since the last report
	closed  bool          // close was called: stop once all is written
	stopped bool          // run has returned: write through
	dropped atomic.Uint64 // every line dropped, for the metric

	wake chan struct{}
	done chan struct{}
}

// newLogWriter makes the writer; lines wait until start.
func newLogWriter(out io.Writer, max int) *logWriter {
	return &logWriter{out: out, max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
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

// close writes what is waiting and returns when it is written; later
// lines are written straight through. The writer must have been started.
func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.poke()
	<-w.done
}
