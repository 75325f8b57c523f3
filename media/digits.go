package media

import (
	"strings"
	"time"
)

// MaxCodeLen is the longest feature code a DigitMatcher follows.
const MaxCodeLen = 8

// DigitTimeout is how long digits are withheld as the possible start of a
// feature code when no further digit comes: then they are passed on. It
// covers deliberate keying of a short code; a lone digit meant for the far
// side (an IVR's "#") is late by at most this much.
const DigitTimeout = 2 * time.Second

// keypad is the alphabet of feature codes.
const keypad = "0123456789*#"

// ValidCode reports whether code can be a feature code: 1 to MaxCodeLen
// keys of 0-9, * and #.
func ValidCode(code string) bool {
	return len(code) >= 1 && len(code) <= MaxCodeLen && strings.Trim(code, keypad) == ""
}

// Verdict is what DigitMatcher.Key decides about one keyed digit.
type Verdict struct {
	// Release is how many of the withheld digits, oldest first, can no
	// longer be part of the code: they are to be passed on, before this
	// digit.
	Release int
	// Hold withholds this digit: the digits withheld so far may still
	// become the code.
	Hold bool
	// Match says this digit completes the code; it and the withheld
	// digits of the code are consumed, passed on to nobody.
	Match bool
}

// DigitMatcher follows the digits one phone keys during a call and tells,
// digit by digit, which may be the start of a feature code and so must not
// reach the far side yet. It keeps only a prefix of the code (bounded by
// MaxCodeLen). A DigitMatcher is not safe for concurrent use; the zero
// value is ready.
type DigitMatcher struct {
	held [MaxCodeLen]byte
	n    int
	last time.Time // when the last digit was withheld (or touched)
}

// Held is the number of digits withheld.
func (m *DigitMatcher) Held() int { return m.n }

// Deadline is when the withheld digits time out; zero when there are none.
func (m *DigitMatcher) Deadline(timeout time.Duration) time.Time {
	if m.n == 0 {
		return time.Time{}
	}
	return m.last.Add(timeout)
}

// Touch restarts the timeout of the withheld digits: the last one is
// still being keyed (an RFC 4733 event still coming in).
func (m *DigitMatcher) Touch(now time.Time) {
	if m.n > 0 {
		m.last = now
	}
}

// Expire releases every withheld digit when none came for timeout; it
// returns how many were released.
func (m *DigitMatcher) Expire(now time.Time, timeout time.Duration) int {
	if m.n == 0 || now.Sub(m.last) < timeout {
		return 0
	}
	n := m.n
	m.n = 0
	return n
}

// Key takes digit d keyed at now, with code the feature code in force (""
// for none: every digit passes). A digit outside 0-9 * # breaks any
// sequence. When the sequence breaks, the digits that can no longer be the
// start of the code are released, and the longest tail that still can is
// kept (with code "*7*8", keying "*7*7" releases "*7" and keeps "*7").
func (m *DigitMatcher) Key(d byte, code string, now time.Time, timeout time.Duration) Verdict {
	var v Verdict
	v.Release = m.Expire(now, timeout)
	if code == "" || strings.IndexByte(keypad, d) < 0 || len(code) > MaxCodeLen {
		v.Release += m.n
		m.n = 0
		return v
	}
	var seq [MaxCodeLen + 1]byte
	n := copy(seq[:], m.held[:m.n])
	seq[n] = d
	n++
	k := longestPrefixTail(seq[:n], code)
	v.Release += n - k
	if k == 0 {
		// The digit itself passes; n-1 withheld ones go before it.
		v.Release--
		m.n = 0
		return v
	}
	if k == len(code) {
		v.Match = true
		m.n = 0
		return v
	}
	v.Hold = true
	m.n = copy(m.held[:], seq[n-k:n])
	m.last = now
	return v
}

// longestPrefixTail is the length of the longest tail of seq that is a
// prefix of code.
func longestPrefixTail(seq []byte, code string) int {
	for k := min(len(seq), len(code)); k > 0; k-- {
		if string(seq[len(seq)-k:]) == code[:k] {
			return k
		}
	}
	return 0
}

// eventKey is the keypad key of an RFC 4733 event code (§3.2: 0-9, 10 is
// *, 11 is #), 0 for the other events (A-D, flash).
func eventKey(code byte) byte {
	switch {
	case code <= 9:
		return '0' + code
	case code == 10:
		return '*'
	case code == 11:
		return '#'
	}
	return 0
}
