// Package ban counts failures per key (a source address, a user) in a
// sliding window and blocks a key that fails too often, for a while. It
// keeps bounded memory whatever the number of keys, and takes its clock
// from the caller so windows and expiry are tested without sleeping.
package ban

import (
	"container/list"
	"sort"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a table when Limits.MaxKeys is not set: at the
// default ten failures about 200 bytes a key, so some 13 MB at most.
const DefaultMaxKeys = 1 << 16

// Limits configure a table.
type Limits struct {
	After   int           // failures within Window that block a key (at least 1)
	Window  time.Duration // sliding window the failures are counted in
	For     time.Duration // how long a key stays blocked
	MaxKeys int           // keys tracked at most; 0 means DefaultMaxKeys
}

// Block is one blocked key.
type Block[K comparable] struct {
	Key      K
	Since    time.Time // when the block began
	Until    time.Time // when it ends on its own
	Failures int       // failures in the window that led to it
}

// Table is safe for concurrent use.
type Table[K comparable] struct {
	lim Limits
	now func() time.Time

	mu      sync.RWMutex        // read-locked on every request, write-locked on failures
	entries map[K]*list.Element // of *entry[K]
	order   *list.List          // least recently struck at the front
}

type entry[K comparable] struct {
	key   K
	fails []int64   // Unix ns of the last lim.After failures, oldest first
	since time.Time // zero unless blocked
	until time.Time
	count int // failures that led to the block
}

// New returns an empty table; now == nil means time.Now.
func New[K comparable](lim Limits, now func() time.Time) *Table[K] {
	if lim.After < 1 {
		lim.After = 1
	}
	if lim.MaxKeys <= 0 {
		lim.MaxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Table[K]{lim: lim, now: now, entries: make(map[K]*list.Element), order: list.New()}
}

// Blocked reports whether k is blocked now.
func (t *Table[K]) Blocked(k K) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	el, ok := t.entries[k]
	if !ok {
		return false
	}
	e := el.Value.(*entry[K])
	return !e.since.IsZero() && t.now().Before(e.until)
}

// Strike records a failure of k. It returns the block when this failure
// began one (so the caller logs and counts each block once), nil
// otherwise, also while k is already blocked.
func (t *Table[K]) Strike(k K) *Block[K] {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var e *entry[K]
	if el, ok := t.entries[k]; ok {
		e = el.Value.(*entry[K])
		t.order.MoveToBack(el)
	} else {
		t.makeRoom(now)
		e = &entry[K]{key: k}
		t.entries[k] = t.order.PushBack(e)
	}
	if !e.since.IsZero() {
		if now.Before(e.until) {
			return nil
		}
		e.since, e.until, e.count = time.Time{}, time.Time{}, 0 // served its time
	}
	// Keep the last After failures; the oldest of them dates the window.
	if len(e.fails) == t.lim.After {
		copy(e.fails, e.fails[1:])
		e.fails = e.fails[:len(e.fails)-1]
	}
	e.fails = append(e.fails, now.UnixNano())
	for len(e.fails) > 0 && now.UnixNano()-e.fails[0] >= int64(t.lim.Window) {
		e.fails = e.fails[1:]
	}
	if len(e.fails) < t.lim.After {
		return nil
	}
	e.since, e.until, e.count = now, now.Add(t.lim.For), len(e.fails)
	e.fails = nil
	return &Block[K]{Key: k, Since: e.since, Until: e.until, Failures: e.count}
}

// makeRoom evicts before a key is inserted into a full table, looking at
// a few of the least recently struck keys only, so the work per failure
// stays constant: first what is over (failures all out of the window, a
// block that has ended), then a key that is not blocked, and only then
// the oldest block. A flood of new keys thus forgets old failures rather
// than growing the table. Callers hold mu.
func (t *Table[K]) makeRoom(now time.Time) {
	const scan = 16
	if t.order.Len() < t.lim.MaxKeys {
		return
	}
	var unblocked *list.Element
	el := t.order.Front()
	for i := 0; i < scan && el != nil; i++ {
		next := el.Next()
		e := el.Value.(*entry[K])
		if t.idle(e, now) {
			t.order.Remove(el)
			delete(t.entries, e.key)
		} else if unblocked == nil && e.since.IsZero() {
			unblocked = el
		}
		el = next
	}
	if t.order.Len() < t.lim.MaxKeys {
		return
	}
	if unblocked == nil {
		unblocked = t.order.Front()
	}
	t.order.Remove(unblocked)
	delete(t.entries, unblocked.Value.(*entry[K]).key)
}

func (t *Table[K]) idle(e *entry[K], now time.Time) bool {
	if !e.since.IsZero() {
		return !now.Before(e.until)
	}
	return len(e.fails) == 0 || now.UnixNano()-e.fails[len(e.fails)-1] >= int64(t.lim.Window)
}

// Blocks lists the keys blocked now, earliest first.
func (t *Table[K]) Blocks() []Block[K] {
	t.mu.RLock()
	defer t.mu.RUnlock()
	now := t.now()
	var out []Block[K]
	for _, el := range t.entries {
		e := el.Value.(*entry[K])
		if !e.since.IsZero() && now.Before(e.until) {
			out = append(out, Block[K]{Key: e.key, Since: e.since, Until: e.until, Failures: e.count})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// Lift ends k's block and forgets its failures; it reports whether k was
// blocked.
func (t *Table[K]) Lift(k K) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.entries[k]
	if !ok {
		return false
	}
	e := el.Value.(*entry[K])
	was := !e.since.IsZero() && t.now().Before(e.until)
	t.order.Remove(el)
	delete(t.entries, k)
	return was
}

// Len reports the keys tracked, blocked or not.
func (t *Table[K]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}
