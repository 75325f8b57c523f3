package media

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkRelayDigits is the relay goroutine's work per packet with DTMF
// feature code detection off, armed (audio flowing, no digits: the one
// compare), on a stream renumbered after a replay (every packet takes the
// detector's path), and for telephone-event packets of digits that pass.
// "send" includes the socket write, as BenchmarkRelayForward; "checks"
// stops before it (the peer has no remote), which shows the detector's
// own cost.
func BenchmarkRelayDigits(b *testing.B) {
	for _, send := range []bool{true, false} {
		for _, mode := range []string{"off", "armed", "renumbered", "events"} {
			name := "checks/" + mode
			if send {
				name = "send/" + mode
			}
			b.Run(name, func(b *testing.B) { benchRelayDigits(b, mode, send) })
		}
	}
}

func benchRelayDigits(b *testing.B, mode string, send bool) {
	c := newCall(b, testPool(b, 2))
	if !send {
		c.b.SetRemote(netip.AddrPort{}, false)
	}
	if mode != "off" {
		c.a.SetEventPayloadType(testEventPT)
		c.a.WatchDigits(&DigitWatch{Code: func() string { return "#72" }, OnMatch: func() {}, Timeout: time.Minute})
	}
	src := c.pa.addr()
	buf := make([]byte, bufSize)
	var seq uint16
	var ts uint32
	pkt := func(pt byte, n int) []byte {
		seq++
		p := buf[:12+n]
		p[0], p[1] = 0x80, pt
		binary.BigEndian.PutUint16(p[2:], seq)
		binary.BigEndian.PutUint32(p[4:], ts)
		binary.BigEndian.PutUint32(p[8:], 0x5eed)
		return p
	}
	event := func(code byte) []byte {
		p := pkt(testEventPT, 4)
		p[12], p[13], p[14], p[15] = code, 0x80|10, 0, 160
		return p
	}
	c.a.relay(pkt(0, 160), src, false) // latch
	if mode == "renumbered" {
		ts += 800
		c.a.relay(event(11), src, false) // #: withheld
		ts += 800
		c.a.relay(event(5), src, false) // 5: # replayed, the stream renumbered
	}
	b.ReportAllocs()
	for b.Loop() {
		if mode == "events" {
			ts += 800
			c.a.relay(event(5), src, false)
			continue
		}
		ts += 160
		c.a.relay(pkt(0, 160), src, false)
	}
}
