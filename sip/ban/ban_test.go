package ban

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/internal/testclock"
)

func newClock() *testclock.Clock { return testclock.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)) }

var ip = netip.MustParseAddr("192.0.2.1")

func TestBlockAfterFailuresInWindow(t *testing.T) {
	c := newClock()
	tb := New[netip.Addr](Limits{After: 10, Window: time.Minute, For: 10 * time.Minute}, c.Now)
	start := c.Now()
	for i := range 9 {
		if b := tb.Strike(ip); b != nil {
			t.Fatalf("blocked after %d failures", i+1)
		}
		c.Advance(5 * time.Second)
	}
	if tb.Blocked(ip) {
		t.Fatal("blocked before the tenth failure")
	}
	b := tb.Strike(ip) // the tenth, 45 s after the first
	if b == nil {
		t.Fatal("ten failures within a minute did not block")
	}
	if b.Key != ip || b.Failures != 10 || !b.Since.Equal(start.Add(45*time.Second)) || !b.Until.Equal(b.Since.Add(10*time.Minute)) {
		t.Errorf("block = %+v", b)
	}
	if !tb.Blocked(ip) {
		t.Error("not blocked after the block began")
	}
	// Further failures while blocked start no new block (logged once).
	if tb.Strike(ip) != nil {
		t.Error("a failure while blocked began another block")
	}
	if bs := tb.Blocks(); len(bs) != 1 || bs[0].Key != ip {
		t.Errorf("Blocks = %+v", bs)
	}
	c.Advance(10*time.Minute - time.Second)
	if !tb.Blocked(ip) {
		t.Error("block ended early")
	}
	c.Advance(time.Second)
	if tb.Blocked(ip) || len(tb.Blocks()) != 0 {
		t.Error("block outlived its time")
	}
	// Served: the count starts over.
	for range 9 {
		if tb.Strike(ip) != nil {
			t.Fatal("blocked again with fewer failures than After")
		}
	}
}

func TestSlidingWindow(t *testing.T) {
	c := newClock()
	tb := New[string](Limits{After: 3, Window: time.Minute, For: time.Minute}, c.Now)
	tb.Strike("u")
	c.Advance(40 * time.Second)
	tb.Strike("u")
	c.Advance(30 * time.Second) // the first failure has left the window
	if tb.Strike("u") != nil {
		t.Fatal("failures 70 s apart counted in a 60 s window")
	}
	c.Advance(10 * time.Second) // 40 s and 70 s old: both still in
	if tb.Strike("u") == nil {
		t.Fatal("three failures within 60 s did not block")
	}
}

func TestLift(t *testing.T) {
	c := newClock()
	tb := New[netip.Addr](Limits{After: 2, Window: time.Minute, For: time.Hour}, c.Now)
	if tb.Lift(ip) {
		t.Error("lifted a key that was never blocked")
	}
	tb.Strike(ip)
	tb.Strike(ip)
	if !tb.Lift(ip) || tb.Blocked(ip) {
		t.Fatal("Lift did not end the block")
	}
	if tb.Strike(ip) != nil {
		t.Error("failures before the lift still counted")
	}
}

func TestBoundedUnderAFlood(t *testing.T) {
	c := newClock()
	const max = 64
	tb := New[netip.Addr](Limits{After: 2, Window: time.Minute, For: time.Hour, MaxKeys: max}, c.Now)
	banned := netip.MustParseAddr("198.51.100.1")
	tb.Strike(banned)
	tb.Strike(banned)
	// Spoofed sources failing once each, far more than the table holds.
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tb.Strike(a)
		if n := tb.Len(); n > max {
			t.Fatalf("table holds %d keys, cap %d", n, max)
		}
	}
	if !tb.Blocked(banned) {
		t.Error("a flood of single failures evicted a block")
	}
	// Over: idle keys make room before anything live is evicted.
	c.Advance(2 * time.Minute)
	fresh := netip.MustParseAddr("203.0.113.9")
	tb.Strike(fresh)
	if tb.Strike(fresh) == nil {
		t.Error("a new key could not be tracked in a full table")
	}
	if !tb.Blocked(banned) {
		t.Error("the block was evicted")
	}
}

func TestConcurrent(t *testing.T) {
	tb := New[netip.Addr](Limits{After: 100, Window: time.Minute, For: time.Minute}, nil)
	var wg sync.WaitGroup
	blocks := make(chan *Block[netip.Addr], 200)
	for range 200 {
		wg.Go(func() {
			if b := tb.Strike(ip); b != nil {
				blocks <- b
			}
			tb.Blocked(ip)
			tb.Blocks()
		})
	}
	wg.Wait()
	close(blocks)
	n := 0
	for range blocks {
		n++
	}
	if n != 1 {
		t.Errorf("%d blocks began, want exactly 1", n)
	}
}
