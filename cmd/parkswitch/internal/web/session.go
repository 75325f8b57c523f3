package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// Sessions are held server-side: the cookie carries a random 256-bit ID and
// nothing else. Unlike a signed cookie, a session ends for good when its
// user signs out, and nothing needs a signing key kept across restarts (a
// restart signs everyone out, which for a phone system's admin pages is a
// fair price). The table is bounded; a full one drops the session seen
// least recently.
const (
	sessionIdle     = 12 * time.Hour     // unused this long, a session ends
	sessionLifetime = 7 * 24 * time.Hour // and in any case this long after sign-in
	sessionTouch    = time.Minute        // how often a session's last use is written
	maxSessions     = 10000
)

// session is one signed-in browser (or, with open pages, one browser).
type session struct {
	user    string // "" on open pages
	stamp   string // the account's stamp at sign-in: a changed password or role ends the session
	csrf    string // the synchronizer token of every form of this session
	created time.Time
	done    chan struct{} // closed when the session ends: its event streams stop

	// Guarded by sessions.mu.
	seen  time.Time
	flash *flash
	ended bool
}

// flash is a one-time message shown on the next page, after a redirect.
type flash struct {
	Error bool
	Text  string
}

type sessions struct {
	now func() time.Time
	max int

	mu    sync.Mutex
	byKey map[[sha256.Size]byte]*session // by the hash of the cookie value
}

func newSessions(now func() time.Time, max int) *sessions {
	return &sessions{now: now, max: max, byKey: map[[sha256.Size]byte]*session{}}
}

// randomToken is 256 random bits, URL-safe.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for user and returns the cookie value naming it.
func (t *sessions) create(user, stamp string) (string, *session) {
	id := randomToken()
	now := t.now()
	s := &session{user: user, stamp: stamp, csrf: randomToken(), created: now, seen: now, done: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byKey) >= t.max {
		t.pruneLocked(now)
	}
	t.byKey[sha256.Sum256([]byte(id))] = s
	return id, s
}

// get returns the live session the cookie value names, or nil.
func (t *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byKey[key]
	if s == nil {
		return nil
	}
	if t.expired(s, now) {
		t.endLocked(key, s)
		return nil
	}
	if now.Sub(s.seen) >= sessionTouch {
		s.seen = now
	}
	return s
}

// end ends the session the cookie value names, if it is live.
func (t *sessions) end(id string) {
	key := sha256.Sum256([]byte(id))
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byKey[key]; s != nil {
		t.endLocked(key, s)
	}
}

func (t *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > sessionIdle || now.Sub(s.created) > sessionLifetime
}

func (t *sessions) endLocked(key [sha256.Size]byte, s *session) {
	delete(t.byKey, key)
	if !s.ended {
		s.ended = true
		close(s.done)
	}
}

// pruneLocked ends expired sessions and, when none was, the one seen
// least recently, so that a full table still takes a new sign-in.
func (t *sessions) pruneLocked(now time.Time) {
	var (
		oldestKey [sha256.Size]byte
		oldest    *session
	)
	n := len(t.byKey)
	for k, s := range t.byKey {
		if t.expired(s, now) {
			t.endLocked(k, s)
			continue
		}
		if oldest == nil || s.seen.Before(oldest.seen) {
			oldestKey, oldest = k, s
		}
	}
	if len(t.byKey) == n && oldest != nil {
		t.endLocked(oldestKey, oldest)
	}
}

// setFlash keeps a message for the session's next page.
func (t *sessions) setFlash(s *session, f flash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.flash = &f
}

// takeFlash returns the kept message, once.
func (t *sessions) takeFlash(s *session) *flash {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

// len is the number of sessions held, expired or not.
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}
