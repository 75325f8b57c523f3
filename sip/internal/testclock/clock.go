// Package testclock is the settable time source the tests of sip and its
// packages inject where a server takes `now func() time.Time`: time moves
// only when the test advances it, so expiries and bans are tested without
// sleeping. It is safe for use by the server's goroutines.
package testclock

import (
	"sync"
	"time"
)

// Clock is a time that moves only by Advance.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock reading t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's current time; pass c.Now where a server takes a time source.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
