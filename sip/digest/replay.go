package digest

import (
	"container/list"
	"sync"
	"time"
)

// maxTrackedNonces caps the replay table (about 200 bytes an entry).
const maxTrackedNonces = 1 << 14

// ncWindow is how far below the highest nonce count a late count is still
// accepted once: requests sharing a nonce may arrive out of order.
const ncWindow = 64

// replayTable remembers, per nonce, which nonce counts were used. When
// full it forgets the oldest entry and raises floor to its issue time: a
// nonce issued at or before floor that is not in the table may have been
// forgotten, so it is refused (the client re-authenticates with a fresh
// nonce) instead of letting its history start over.
type replayTable struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element // of *ncState
	order   *list.List               // first use, oldest at the front
	floor   int64
}

type ncState struct {
	nonce  string
	issued int64
	top    uint32 // highest count seen
	window uint64 // bit i: top-i was seen
	dead   bool   // a response failed: the nonce is spent
}

func newReplayTable(max int) *replayTable {
	return &replayTable{max: max, entries: make(map[string]*list.Element), order: list.New()}
}

// usable reports whether nonce may still be answered with count nc
// (counted: qop=auth) without recording anything: the password is judged
// only on a usable nonce.
func (r *replayTable) usable(nonce string, issued int64, counted bool, nc uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.entries[nonce]
	switch {
	case ok:
		st := el.Value.(*ncState)
		return !st.dead && (!counted || st.fresh(nc))
	case !counted:
		return true // never tracked unless retired
	default:
		return issued > r.floor
	}
}

// accept records count nc for nonce and reports whether it is new.
func (r *replayTable) accept(nonce string, issued int64, nc uint32, now int64, ttl time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[nonce]; ok {
		st := el.Value.(*ncState)
		return !st.dead && st.mark(nc)
	}
	if issued <= r.floor {
		return false
	}
	r.insert(&ncState{nonce: nonce, issued: issued, top: nc, window: 1}, now, ttl)
	return true
}

// retire makes nonce unusable: a failed response spends it, so every
// guess needs a fresh challenge.
func (r *replayTable) retire(nonce string, issued int64, now int64, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[nonce]; ok {
		el.Value.(*ncState).dead = true
		return
	}
	if issued > r.floor {
		r.insert(&ncState{nonce: nonce, issued: issued, dead: true}, now, ttl)
	}
}

// insert adds st, making room first; callers hold mu.
func (r *replayTable) insert(st *ncState, now int64, ttl time.Duration) {
	// Expired nonces are refused before they get here, so dropping them
	// loses nothing; dropping a live one raises the floor.
	for r.order.Len() > 0 {
		front := r.order.Front()
		old := front.Value.(*ncState)
		expired := now-old.issued > int64(ttl)
		if !expired && r.order.Len() < r.max {
			break
		}
		if !expired && old.issued > r.floor {
			r.floor = old.issued
		}
		r.order.Remove(front)
		delete(r.entries, old.nonce)
	}
	r.entries[st.nonce] = r.order.PushBack(st)
}

// fresh reports whether mark(nc) would accept nc.
func (s *ncState) fresh(nc uint32) bool {
	switch {
	case nc > s.top:
		return true
	case s.top-nc >= ncWindow:
		return false
	default:
		return s.window&(uint64(1)<<(s.top-nc)) == 0
	}
}

func (s *ncState) mark(nc uint32) bool {
	switch {
	case nc > s.top:
		if shift := nc - s.top; shift >= ncWindow {
			s.window = 1
		} else {
			s.window = s.window<<shift | 1
		}
		s.top = nc
		return true
	case s.top-nc >= ncWindow:
		return false
	default:
		bit := uint64(1) << (s.top - nc)
		if s.window&bit != 0 {
			return false
		}
		s.window |= bit
		return true
	}
}
