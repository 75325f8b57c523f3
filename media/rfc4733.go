package media

import (
	"encoding/binary"
	"time"
)

// This file is the DTMF feature code detector of an endpoint: it reads the
// RFC 4733 telephone-events its remote sends, withholds those that may be
// the start of a feature code (DTMF park), and passes them on, regenerated,
// once they turn out not to be.
//
// One event spans several packets with one timestamp: updates with a
// growing duration, and the end packet sent three times. A digit is
// counted once, at the first packet of its timestamp that arrives (the
// start packet, or whichever came when it was lost): every packet of the
// event must be forwarded or withheld alike, so the verdict is needed
// before the first one is relayed, and waiting for the end would delay
// every digit of every call.
//
// Withheld packets leave a gap in the sequence numbers the far side sees,
// which it takes for loss. Digits released later are sent to it as new
// packets with their original timestamps (increasing, and older than any
// later event of the same source), so from then on every packet of that
// stream is renumbered, shifted by the count of packets inserted. That
// costs a few instructions per packet, and only on a stream that had
// digits replayed.

// DigitWatch arms an endpoint's feature code detection (WatchDigits).
type DigitWatch struct {
	// Code is the feature code to follow, "" for none. It is asked at
	// the first packet of each event, on the relay goroutine: it must be
	// quick and must not block.
	Code func() string
	// OnMatch is called on the relay goroutine when the code has been
	// keyed. It must not block: a non-blocking send on a channel.
	OnMatch func()
	// Timeout: withheld digits with no digit after them for this long are
	// passed on. Default DigitTimeout.
	Timeout time.Duration
	// Now is the clock the timeout is measured with; default time.Now.
	Now func() time.Time
}

// maxReplay is the most packets one withheld digit is regenerated as:
// a start and three end packets, and never more than arrived.
const maxReplay = 4

// The trap word decides which RTP packets take the detector's path:
// those whose second byte, masked, equals match. Bits 0-7 are match, 8-15
// the mask, 16-23 the telephone-event payload type (trapNone: none), and
// then the armed and busy flags. Idle: mask 0x7f and match the payload
// type, one compare per packet. Busy (digits withheld, or a renumbered
// stream): mask 0, so every packet. Disarmed: match trapNone, which no
// masked byte equals.
const (
	trapNone  = 0x80
	trapArmed = 1 << 24
	trapBusy  = 1 << 25
)

func trapWord(pt byte, armed, busy bool) uint32 {
	w := uint32(pt) << 16
	switch {
	case busy:
		w |= trapBusy
	case armed && pt < trapNone:
		w |= 0x7f<<8 | uint32(pt)
	default:
		w |= 0x7f<<8 | trapNone
	}
	if armed {
		w |= trapArmed
	}
	return w
}

// updateTrap applies f to the trap word's payload type, armed and busy.
func (e *Endpoint) updateTrap(f func(pt byte, armed, busy bool) (byte, bool, bool)) {
	for {
		old := e.trap.Load()
		pt, armed, busy := f(byte(old>>16), old&trapArmed != 0, old&trapBusy != 0)
		if e.trap.CompareAndSwap(old, trapWord(pt, armed, busy)) {
			return
		}
	}
}

// SetEventPayloadType sets the RTP payload type of the telephone-events
// the remote sends (its peer's telephone-event number, RFC 3264 §5.1);
// outside 0-127 (e.g. -1) means the leg negotiated none.
func (e *Endpoint) SetEventPayloadType(pt int) {
	b := byte(trapNone)
	if pt >= 0 && pt < trapNone {
		b = byte(pt)
	}
	e.updateTrap(func(_ byte, armed, busy bool) (byte, bool, bool) { return b, armed, busy })
}

// WatchDigits arms feature code detection with w (nil disarms): the
// remote's telephone-events of a possible code are withheld, a keyed code
// calls w.OnMatch, and the rest pass as before. Digits withheld when it is
// disarmed are passed on at their timeout.
func (e *Endpoint) WatchDigits(w *DigitWatch) {
	if w != nil {
		c := *w
		if c.Timeout <= 0 {
			c.Timeout = DigitTimeout
		}
		if c.Now == nil {
			c.Now = time.Now
		}
		w = &c
	}
	e.watch.Store(w)
	e.updateTrap(func(pt byte, _, busy bool) (byte, bool, bool) { return pt, w != nil, busy })
}

// digitState is the detector's state. Only the poller's goroutine
// touches it.
type digitState struct {
	m     DigitMatcher
	held  [MaxCodeLen]heldEvent // the withheld digits, as m holds them
	ev    event                 // the event being received
	shift uint16                // added to the sequence number of every packet passed on
	next  uint16                // the sequence number after the last packet seen while busy
	// deadline is the poller's deadline for the withheld digits' timeout.
	deadline time.Time
	out      [16 + srtpRoom]byte // a regenerated packet
}

// event is the telephone-event whose packets are arriving.
type event struct {
	valid    bool
	withheld bool // its packets are withheld
	inHeld   bool // it is the last of digitState.held
	ended    bool
	code     byte
	ssrc, ts uint32
	dur      uint16
}

// heldEvent is a withheld digit, enough to regenerate it.
type heldEvent struct {
	pt, code, vol byte
	packets       uint8 // that arrived, up to maxReplay
	ssrc, ts      uint32
	first, dur    uint16 // duration in its first and its last packet
}

// digitPacket is the detector's path for one RTP packet whose second
// byte the trap caught, on its way to peer; it reports whether the
// packet is withheld. It does not allocate.
func (e *Endpoint) digitPacket(pkt []byte, peer *Endpoint) bool {
	d := &e.digits
	seq := binary.BigEndian.Uint16(pkt[2:])
	d.next = seq + 1
	w := e.watch.Load()
	t := e.trap.Load()
	isEvent := w != nil && byte(t>>16) < trapNone && pkt[1]&0x7f == byte(t>>16)
	if !isEvent && d.m.Held() == 0 {
		// A renumbered stream's ordinary packet: no clock needed.
		if d.shift != 0 {
			binary.BigEndian.PutUint16(pkt[2:], seq+d.shift)
		}
		return false
	}
	timeout, now := watchClock(w)
	if n := d.m.Expire(now, timeout); n > 0 {
		e.replay(peer, seq, n)
	}
	withheld := false
	if isEvent {
		if p, ok := eventPayload(pkt); ok {
			withheld = e.digitEvent(pkt, p, peer, w, now)
		}
	}
	if withheld {
		e.digitsWithheld.Add(1)
	} else if d.shift != 0 {
		binary.BigEndian.PutUint16(pkt[2:], seq+d.shift)
	}
	e.settle(timeout, now)
	return withheld
}

// watchClock is w's timeout and the time now by its clock, the defaults
// when disarmed.
func watchClock(w *DigitWatch) (time.Duration, time.Time) {
	if w == nil {
		return DigitTimeout, time.Now()
	}
	return w.Timeout, w.Now()
}

// digitEvent handles a telephone-event packet with payload p and reports
// whether it is withheld.
func (e *Endpoint) digitEvent(pkt, p []byte, peer *Endpoint, w *DigitWatch, now time.Time) bool {
	d, ev := &e.digits, &e.digits.ev
	ssrc, ts := binary.BigEndian.Uint32(pkt[8:]), binary.BigEndian.Uint32(pkt[4:])
	code, end, dur := p[0], p[1]&0x80 != 0, binary.BigEndian.Uint16(p[2:])
	switch {
	case ev.valid && ev.ssrc == ssrc && ev.ts == ts:
		// An update or a repeated end packet of the event.
	case ev.valid && ev.ssrc == ssrc && !ev.ended && ev.code == code && ts == ev.ts+uint32(ev.dur):
		// The next segment of a long event (RFC 4733 §2.5.1.3).
		ev.ts = ts
	default:
		*ev = event{valid: true, code: code, ssrc: ssrc, ts: ts}
		e.newDigit(pkt, p, peer, w, now)
	}
	ev.ended = ev.ended || end
	ev.dur = dur
	if ev.inHeld {
		h := &d.held[d.m.Held()-1]
		h.dur = dur
		h.packets = min(h.packets+1, maxReplay)
		d.m.Touch(now)
	}
	return ev.withheld
}

// newDigit decides the fate of a new event, d.ev, whose first packet
// (to arrive) is pkt.
func (e *Endpoint) newDigit(pkt, p []byte, peer *Endpoint, w *DigitWatch, now time.Time) {
	d := &e.digits
	before := d.m.Held()
	v := d.m.Key(eventKey(p[0]), w.Code(), now, w.Timeout)
	e.replay(peer, binary.BigEndian.Uint16(pkt[2:]), min(v.Release, before))
	switch {
	case v.Match:
		d.ev.withheld = true
		w.OnMatch()
	case v.Hold:
		d.ev.withheld, d.ev.inHeld = true, true
		d.held[d.m.Held()-1] = heldEvent{
			pt: pkt[1] & 0x7f, code: p[0], vol: p[1] & 0x3f,
			ssrc: d.ev.ssrc, ts: d.ev.ts, first: binary.BigEndian.Uint16(p[2:]),
		}
	}
}

// replay sends the n oldest withheld digits to peer (nil: they are
// dropped), numbered from seq on, and forgets them.
func (e *Endpoint) replay(peer *Endpoint, seq uint16, n int) {
	d := &e.digits
	for i := range n {
		h := &d.held[i]
		count := max(int(h.packets), 1)
		for j := range count {
			b := d.out[:16]
			b[0], b[1] = 0x80, h.pt
			if j == 0 {
				b[1] |= 0x80 // marker: the start of an event
			}
			binary.BigEndian.PutUint16(b[2:], seq+d.shift)
			binary.BigEndian.PutUint32(b[4:], h.ts)
			binary.BigEndian.PutUint32(b[8:], h.ssrc)
			b[12], b[13] = h.code, h.vol
			dur := h.dur
			if count > 1 && j == 0 {
				dur = h.first
			} else {
				b[13] |= 0x80 // end
			}
			binary.BigEndian.PutUint16(b[14:], dur)
			d.shift++
			if peer != nil && e.forward(peer, b, false) {
				e.digitsReplayed.Add(1)
			}
		}
	}
	// The rest move up; the matcher already dropped the released ones.
	copy(d.held[:], d.held[n:n+d.m.Held()])
	if d.ev.inHeld && d.m.Held() == 0 {
		d.ev.inHeld = false
	}
}

// settle makes the trap and the read deadline follow the state: busy while
// digits are withheld or the stream is renumbered, and a deadline at the
// withheld digits' timeout.
func (e *Endpoint) settle(timeout time.Duration, now time.Time) {
	d := &e.digits
	busy := d.m.Held() > 0 || d.shift != 0
	if t := e.trap.Load(); (t&trapBusy != 0) != busy {
		e.updateTrap(func(pt byte, armed, _ bool) (byte, bool, bool) { return pt, armed, busy })
	}
	var at time.Time
	if dl := d.m.Deadline(timeout); !dl.IsZero() {
		// The deadline is on the real clock; Now may be another.
		at = time.Now().Add(dl.Sub(now))
	}
	if !at.Equal(d.deadline) {
		d.deadline = at
		e.poller.setDue(e, at)
	}
}

// digitsTimedOut runs on the poller's goroutine when the digit deadline
// passed: withheld digits that timed out are passed on.
func (e *Endpoint) digitsTimedOut() {
	d := &e.digits
	timeout, now := watchClock(e.watch.Load())
	if n := d.m.Expire(now, timeout); n > 0 {
		e.replay(e.peer.Load(), d.next, n)
	}
	// The deadline that fired is spent (the poller has forgotten it).
	d.deadline = time.Time{}
	e.settle(timeout, now)
}

// eventPayload is the RFC 4733 payload of an RTP packet: at least the 4
// bytes of one event, after the CSRCs and any header extension.
func eventPayload(pkt []byte) ([]byte, bool) {
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 { // extension: 4 bytes, then its length in words
		if len(pkt) < off+4 {
			return nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	}
	if len(pkt) < off+4 {
		return nil, false
	}
	return pkt[off : off+4], true
}
