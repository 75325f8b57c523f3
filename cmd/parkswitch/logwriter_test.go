package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// stuckOutput is a log reader that takes nothing until released, like a
// pipe nobody reads. entered is told of each write as it starts.
type stuckOutput struct {
	release chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
}

func newStuckOutput() *stuckOutput {
	return &stuckOutput{release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (o *stuckOutput) Write(p []byte) (int, error) {
	o.entered <- struct{}{}
	<-o.release
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	return o.buf.Write(p)
}

func (o *stuckOutput) lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Split(strings.TrimSuffix(o.buf.String(), "\n"), "\n")
}

// TestLogWriterNeverBlocks: with the reader stuck, lines up to the bound
// wait and the rest are dropped whole, without the writer waiting; once
// the reader takes them they come out in order, in one write, followed by
// the count of the dropped.
func TestLogWriterNeverBlocks(t *testing.T) {
	out := newStuckOutput()
	const size = 20
	w := newLogWriter(out, 10*size)
	reported := make(chan uint64, 4)
	w.start(func(n uint64) {
		reported <- n
		fmt.Fprintf(w, "dropped %d\n", n)
	})
	line := func(i int) string { return fmt.Sprintf("line %04d of 100...", i) } // size bytes with its newline

	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		fmt.Fprintln(w, "the first line, stuck")
		<-out.entered
		for i := range 100 {
			fmt.Fprintln(w, line(i))
		}
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("a Write waited for the stuck reader")
	}
	if d := w.dropped.Load(); d != 90 {
		t.Fatalf("dropped %d of 100 lines with room for 10", d)
	}
	close(out.release)
	select {
	case n := <-reported:
		if n != 90 {
			t.Errorf("reported %d dropped, want 90", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the drop was not reported")
	}
	w.close()
	got := out.lines()
	want := []string{"the first line, stuck"}
	for i := range 10 {
		want = append(want, line(i))
	}
	want = append(want, "dropped 90")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out.writes != 3 {
		t.Errorf("%d writes, want 3: the stuck line, the ten waiting together, the report", out.writes)
	}
}

// TestLogWriterCloseFlushes: close returns after every line is written,
// and later lines are written straight through.
func TestLogWriterCloseFlushes(t *testing.T) {
	out := newStuckOutput()
	close(out.release)
	out.entered = make(chan struct{}, 2000)
	w := newLogWriter(out, 1<<20)
	w.start(nil)
	for i := range 1000 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	w.close()
	if got := out.lines(); len(got) != 1000 || got[999] != "line 999" {
		t.Fatalf("after close: %d lines, last %q", len(got), got[len(got)-1])
	}
	fmt.Fprintf(w, "after\n")
	w.close() // twice is harmless
	if got := out.lines(); got[len(got)-1] != "after" {
		t.Errorf("a line after close was not written: last %q", got[len(got)-1])
	}
	if d := w.dropped.Load(); d != 0 {
		t.Errorf("dropped %d with room for all", d)
	}
}

// TestLogWriterGathers: lines that come within the linger of the first go
// out in one write, not one write (and one wake-up of the writer) each.
func TestLogWriterGathers(t *testing.T) {
	out := newStuckOutput()
	close(out.release)
	out.entered = make(chan struct{}, 100)
	w := newLogWriter(out, 1<<20)
	w.linger = time.Second
	w.start(nil)
	for i := range 10 {
		fmt.Fprintf(w, "line %d\n", i)
		time.Sleep(time.Millisecond) // time enough for a writer that does not linger
	}
	w.close() // ends the linger at once
	if got := out.lines(); len(got) != 10 {
		t.Fatalf("%d lines written, want 10", len(got))
	}
	if out.writes != 1 {
		t.Errorf("%d writes for ten lines within the linger, want 1", out.writes)
	}
}
