package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

const testEventPT = 101

// keyer is a phone's outgoing stream: G.711 audio and RFC 4733 events
// with one SSRC, one sequence and one media clock.
type keyer struct {
	t    testing.TB
	conn *net.UDPConn
	dst  netip.AddrPort
	pt   byte // telephone-event payload type
	seq  uint16
	ts   uint32
	ssrc uint32
	wrap func([]byte) []byte // SRTP protection, or nil
}

func newKeyer(t testing.TB, conn *net.UDPConn, dst netip.AddrPort) *keyer {
	return &keyer{t: t, conn: conn, dst: dst, pt: testEventPT, seq: 65530, ts: 1 << 31, ssrc: 0xd1e7}
}

func (k *keyer) send(pt byte, marker bool, ts uint32, payload []byte) {
	k.t.Helper()
	pkt, err := (&rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: k.seq, Timestamp: ts, SSRC: k.ssrc},
		Payload: payload,
	}).Marshal()
	if err != nil {
		k.t.Fatal(err)
	}
	k.seq++
	if k.wrap != nil {
		pkt = k.wrap(pkt)
	}
	send(k.t, k.conn, k.dst, pkt)
	// Loopback keeps order, but the reader must not fall behind a
	// socket buffer either.
	time.Sleep(200 * time.Microsecond)
}

func (k *keyer) audio(n int) {
	for range n {
		k.send(0, false, k.ts, make([]byte, 160))
		k.ts += 160
	}
}

// eventPacket sends one packet of an event of key at the current
// timestamp.
func (k *keyer) eventPacket(key byte, end bool, dur uint16) {
	code := map[byte]byte{'*': 10, '#': 11, 'A': 12}[key]
	if key >= '0' && key <= '9' {
		code = key - '0'
	}
	flags := byte(10)
	if end {
		flags |= 0x80
	}
	k.send(k.pt, dur == 160 && !end, k.ts, []byte{code, flags, byte(dur >> 8), byte(dur)})
}

// digit keys one digit as phones do: three updates and the end packet
// three times, one timestamp; then the media clock moves on.
func (k *keyer) digit(key byte) {
	for _, d := range []uint16{160, 320, 480} {
		k.eventPacket(key, false, d)
	}
	for range 3 {
		k.eventPacket(key, true, 640)
	}
	k.ts += 640
}

func (k *keyer) digits(keys string) {
	for i := range len(keys) {
		k.digit(keys[i])
	}
}

// heard is what a far end received of one stream.
type heard struct {
	pkts []rtp.Packet
}

// listenAll reads c until it has been quiet for quiet.
func listenAll(t testing.TB, c *net.UDPConn, quiet time.Duration, open func([]byte) []byte) heard {
	t.Helper()
	var h heard
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return h
		}
		if err != nil {
			t.Fatal(err)
		}
		b := bytes.Clone(buf[:n])
		if open != nil {
			b = open(b)
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("far end got a malformed packet: %v", err)
		}
		h.pkts = append(h.pkts, p)
	}
}

// digits are the events of payload type pt, once per timestamp, in the
// order they arrived.
func (h heard) digits(pt byte) string {
	var out []byte
	seen := map[uint32]bool{}
	for _, p := range h.pkts {
		if p.PayloadType != pt || len(p.Payload) < 4 || seen[p.Timestamp] {
			continue
		}
		seen[p.Timestamp] = true
		out = append(out, map[byte]byte{10: '*', 11: '#', 12: 'A'}[p.Payload[0]])
		if p.Payload[0] <= 9 {
			out[len(out)-1] = '0' + p.Payload[0]
		}
	}
	return string(out)
}

func (h heard) count(pt byte) int {
	n := 0
	for _, p := range h.pkts {
		if p.PayloadType == pt {
			n++
		}
	}
	return n
}

// checkOrder fails unless sequence numbers strictly increase (mod 2^16)
// and the events' timestamps never go back.
func (h heard) checkOrder(t testing.TB) {
	t.Helper()
	var lastTS uint32
	haveTS := false
	for i, p := range h.pkts {
		if i > 0 {
			if d := p.SequenceNumber - h.pkts[i-1].SequenceNumber; d == 0 || d > 1<<15 {
				t.Errorf("packet %d: sequence %d after %d", i, p.SequenceNumber, h.pkts[i-1].SequenceNumber)
			}
		}
		if p.PayloadType != 0 {
			if haveTS && int32(p.Timestamp-lastTS) < 0 {
				t.Errorf("packet %d: event timestamp %d before %d", i, p.Timestamp, lastTS)
			}
			lastTS, haveTS = p.Timestamp, true
		}
	}
}

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// watched is a call whose a side watches for code, with the keyer on a's
// phone.
type watched struct {
	*call
	k       *keyer
	matches atomic.Int32
	clock   *fakeClock
}

func newWatched(t testing.TB, code string) *watched {
	t.Helper()
	w := &watched{call: newCall(t, testPool(t, 2)), clock: &fakeClock{t: time.Unix(1e9, 0)}}
	w.k = newKeyer(t, w.pa.rtp, w.a.Addr())
	w.a.SetEventPayloadType(testEventPT)
	w.a.WatchDigits(&DigitWatch{
		Code:    func() string { return code },
		OnMatch: func() { w.matches.Add(1) },
		Now:     w.clock.Now,
	})
	return w
}

// TestDigitDetection keys sequences on one side of a bridged call and
// checks what the far side hears, and how often the code matched.
func TestDigitDetection(t *testing.T) {
	tests := []struct {
		name    string
		code    string
		keys    func(w *watched)
		heard   string // digits at the far end
		matches int32
	}{
		{"code keyed", "#72", func(w *watched) { w.k.digits("#72") }, "", 1},
		{"other digits pass", "#72", func(w *watched) { w.k.digits("512") }, "512", 0},
		{"broken sequence replayed", "#72", func(w *watched) { w.k.digits("#5") }, "#5", 0},
		{"broken at the last key", "#72", func(w *watched) { w.k.digits("#75") }, "#75", 0},
		{"repeated first key", "#72", func(w *watched) { w.k.digits("##72") }, "#", 1},
		{"code after a replay", "#72", func(w *watched) { w.k.digits("#5#72") }, "#5", 1},
		{"code twice", "#72", func(w *watched) { w.k.digits("#72#72") }, "", 2},
		{"no code configured", "", func(w *watched) { w.k.digits("#72") }, "#72", 0},
		{"repeated end packets, lost start packets", "#72", func(w *watched) {
			for range 5 {
				w.k.eventPacket('#', true, 640) // only its end, five times
			}
			w.k.ts += 640
			w.k.eventPacket('7', false, 160)
			w.k.eventPacket('7', false, 160) // the start twice
			w.k.eventPacket('7', true, 480)
			w.k.ts += 480
			w.k.eventPacket('2', false, 320) // start lost
			for range 3 {
				w.k.eventPacket('2', true, 640)
			}
			w.k.eventPacket('2', true, 640) // a late duplicate
		}, "", 1},
		{"audio interleaved with the digits", "#72", func(w *watched) {
			w.k.digit('#')
			w.k.audio(3)
			w.k.eventPacket('7', false, 160)
			w.k.eventPacket('7', true, 320)
			w.k.ts += 320
			w.k.audio(2)
			w.k.digit('2')
		}, "", 1},
		{"telephone-event of another payload type", "#72", func(w *watched) {
			w.k.pt = 96
			w.k.digits("#72")
		}, "", 0},
		{"a non-keypad event breaks the sequence", "#72", func(w *watched) { w.k.digits("#A72") }, "#A72", 0},
		{"timeout between digits", "#72", func(w *watched) {
			w.k.digit('#')
			w.clock.advance(3 * time.Second)
			w.k.digits("72")
		}, "#72", 0},
		{"a pause inside the timeout", "#72", func(w *watched) {
			w.k.digit('#')
			w.clock.advance(1500 * time.Millisecond)
			w.k.audio(2)
			w.k.digit('7')
			w.clock.advance(1500 * time.Millisecond)
			w.k.digit('2')
		}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatched(t, tt.code)
			w.k.audio(3)
			tt.keys(w)
			w.k.audio(3)
			h := listenAll(t, w.pb.rtp, 300*time.Millisecond, nil)
			if got := h.digits(testEventPT); got != tt.heard {
				t.Errorf("far end heard %q, want %q", got, tt.heard)
			}
			if tt.name == "telephone-event of another payload type" {
				if got := h.digits(96); got != "#72" {
					t.Errorf("events of another type: far end heard %q, want all of them", got)
				}
			}
			if n := w.matches.Load(); n != tt.matches {
				t.Errorf("%d matches, want %d", n, tt.matches)
			}
			if n := h.count(0); n < 6 {
				t.Errorf("far end heard %d audio packets, want all", n)
			}
			h.checkOrder(t)
			st := w.a.Stats()
			if st.Dropped != 0 {
				t.Errorf("%d packets dropped", st.Dropped)
			}
			if sent := uint64(w.k.seq - 65530); st.PacketsIn != sent {
				t.Errorf("endpoint took %d of %d packets", st.PacketsIn, sent)
			}
			if got, want := uint64(len(h.pkts)), st.PacketsIn-st.DigitsWithheld+st.DigitsReplayed; got != want {
				t.Errorf("far end got %d packets; %d in, %d withheld, %d replayed", got, st.PacketsIn, st.DigitsWithheld, st.DigitsReplayed)
			}
		})
	}
}

// TestDigitsPassUntouched: with no digit of a possible code, packets are
// relayed byte for byte (no renumbering).
func TestDigitsPassUntouched(t *testing.T) {
	w := newWatched(t, "#72")
	var sent [][]byte
	w.k.wrap = func(b []byte) []byte { sent = append(sent, b); return b }
	w.k.audio(2)
	w.k.digits("15")
	w.k.audio(2)
	h := listenAll(t, w.pb.rtp, 200*time.Millisecond, nil)
	if len(h.pkts) != len(sent) {
		t.Fatalf("far end got %d of %d packets", len(h.pkts), len(sent))
	}
	for i, p := range h.pkts {
		b, _ := p.Marshal()
		if !bytes.Equal(b, sent[i]) {
			t.Fatalf("packet %d changed in transit", i)
		}
	}
}

// TestDigitTimeoutWithNoPacket: a digit withheld and followed by nothing
// at all (a phone that sends no audio after it) reaches the far side when
// its timeout passes on the real clock; later packets follow its numbers.
func TestDigitTimeoutWithNoPacket(t *testing.T) {
	w := newWatched(t, "#72")
	w.a.WatchDigits(&DigitWatch{Code: func() string { return "#72" }, OnMatch: func() { w.matches.Add(1) }, Timeout: 150 * time.Millisecond})
	w.k.audio(2)
	w.k.digit('#')
	start := time.Now()
	h := listenAll(t, w.pb.rtp, time.Second, nil)
	if got := h.digits(testEventPT); got != "#" {
		t.Fatalf("far end heard %q, want the withheld #", got)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the withheld digit took %v", waited)
	}
	w.k.audio(3)
	h.pkts = append(h.pkts, listenAll(t, w.pb.rtp, 200*time.Millisecond, nil).pkts...)
	h.checkOrder(t)
	if n := h.count(0); n != 5 {
		t.Errorf("far end heard %d audio packets, want 5", n)
	}
	if st := w.a.Stats(); st.DigitsWithheld != 6 || st.DigitsReplayed != 4 {
		t.Errorf("withheld %d, replayed %d; want 6 and 4", st.DigitsWithheld, st.DigitsReplayed)
	}
}

// TestDigitPayloadTypePerLeg: the payload type is the endpoint's own; a
// change applies to the next packets, and disarming passes everything.
func TestDigitPayloadTypePerLeg(t *testing.T) {
	w := newWatched(t, "#72")
	w.b.SetEventPayloadType(96) // the other leg's number: no effect on a
	w.k.digits("#72")
	waitFor(t, "the match with type 101", func() bool { return w.matches.Load() == 1 })
	w.a.SetEventPayloadType(96)
	w.k.digits("#72") // still 101: not events any more
	w.k.pt = 96
	w.k.digits("#72")
	waitFor(t, "the match with type 96", func() bool { return w.matches.Load() == 2 })
	w.a.WatchDigits(nil)
	w.k.digits("#72")
	h := listenAll(t, w.pb.rtp, 200*time.Millisecond, nil)
	if got := h.digits(testEventPT) + "/" + h.digits(96); got != "#72/#72" {
		t.Errorf("far end heard %q, want #72/#72", got)
	}
	if n := w.matches.Load(); n != 2 {
		t.Errorf("%d matches, want 2", n)
	}
}

// TestDigitsOverSRTP: replayed and renumbered packets are encrypted for
// the far side like relayed ones, and it decrypts them all.
func TestDigitsOverSRTP(t *testing.T) {
	w := newWatched(t, "#72")
	farA, keysA := newSRTPPeer(t)
	farB, keysB := newSRTPPeer(t)
	setSRTP(t, w.a, keysA)
	setSRTP(t, w.b, keysB)
	w.k.wrap = func(b []byte) []byte { return farA.protect(t, b) }
	w.k.audio(2)
	w.k.digits("#5")
	w.k.audio(2)
	w.k.digits("#72")
	w.k.audio(2)
	h := listenAll(t, w.pb.rtp, 300*time.Millisecond, func(b []byte) []byte { return farB.open(t, b) })
	if got := h.digits(testEventPT); got != "#5" {
		t.Errorf("far end heard %q, want #5", got)
	}
	if n := w.matches.Load(); n != 1 {
		t.Errorf("%d matches, want 1", n)
	}
	h.checkOrder(t)
}

// TestDigitRelayAllocs keeps detection allocation-free: the audio of an
// armed endpoint, digits that pass, digits withheld then replayed, and the
// renumbered stream after them.
func TestDigitRelayAllocs(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	c.a.SetEventPayloadType(testEventPT)
	var matches atomic.Int32
	c.a.WatchDigits(&DigitWatch{Code: func() string { return "#72" }, OnMatch: func() { matches.Add(1) }, Timeout: time.Minute})
	src := c.pa.addr()
	buf := make([]byte, bufSize)
	var seq uint16
	var ts uint32
	pkt := func(pt byte, payload ...byte) []byte {
		seq++
		b := buf[:12+len(payload)]
		b[0], b[1] = 0x80, pt
		binary.BigEndian.PutUint16(b[2:], seq)
		binary.BigEndian.PutUint32(b[4:], ts)
		binary.BigEndian.PutUint32(b[8:], 0x5eed)
		copy(b[12:], payload)
		return b
	}
	audio := make([]byte, 160)
	digit := func(code byte) {
		ts += 800
		c.a.relay(pkt(testEventPT, code, 10, 0, 160), src, false)
		c.a.relay(pkt(testEventPT, code, 0x80|10, 1, 64), src, false)
	}
	c.a.relay(pkt(0, audio...), src, false) // latch
	for _, tt := range []struct {
		name string
		run  func()
	}{
		{"audio, armed", func() { ts += 160; c.a.relay(pkt(0, audio...), src, false) }},
		{"a digit that passes", func() { digit(5) }},
		{"withheld, then replayed", func() { digit(11); digit(5) }},
		{"renumbered audio", func() { ts += 160; c.a.relay(pkt(0, audio...), src, false) }},
		{"the code", func() { digit(11); digit(7); digit(2) }},
	} {
		if allocs := testing.AllocsPerRun(200, tt.run); allocs != 0 {
			t.Errorf("%s: %v allocations per run", tt.name, allocs)
		}
	}
	if matches.Load() == 0 {
		t.Error("the code never matched")
	}
	if st := c.a.Stats(); st.DigitsReplayed == 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}
