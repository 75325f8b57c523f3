package siptest

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
)

// rtpSession is the phone's media socket for one call: a reader goroutine
// counts what arrives, senders share one SSRC/sequence/timestamp space.
type rtpSession struct {
	conn  *net.UDPConn
	local netip.AddrPort

	// recvEventPT is the telephone-event type of the phone's own SDP,
	// which is the type the far end uses when sending events to it.
	recvEventPT atomic.Int32
	received    atomic.Uint64
	sent        atomic.Uint64
	perPT       [128]atomic.Uint64

	mu        sync.Mutex
	lastSrc   netip.AddrPort
	digits    []byte
	lastEndTS uint32
	haveEnd   bool
	recMax    int         // RecordRTP: packets to keep
	rec       []RTPPacket // kept so far

	sendMu  sync.Mutex
	ssrc    uint32
	seq     uint16
	ts      uint32
	started bool
}

func newRTPSession(p *Phone) (*rtpSession, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	la := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	r := &rtpSession{
		conn:  conn,
		local: netip.AddrPortFrom(la.Addr().Unmap(), la.Port()),
		ssrc:  rand.Uint32(),
		seq:   uint16(rand.Uint32()),
		ts:    rand.Uint32(),
	}
	r.recvEventPT.Store(ptEvent)
	if !p.goTracked(r.read) {
		conn.Close()
		return nil, ErrClosed
	}
	return r, nil
}

func (r *rtpSession) close() { r.conn.Close() }

func (r *rtpSession) read() {
	buf := make([]byte, 2048)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var h rtp.Header
		hl, err := h.Unmarshal(buf[:n])
		if err != nil || h.Version != 2 {
			continue
		}
		r.received.Add(1)
		r.perPT[h.PayloadType&0x7f].Add(1)
		r.mu.Lock()
		r.lastSrc = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		r.recordLocked(h, buf[hl:n])
		if int32(h.PayloadType) == r.recvEventPT.Load() && n-hl >= 4 {
			r.noteEventLocked(h.Timestamp, buf[hl:n])
		}
		r.mu.Unlock()
	}
}

// noteEventLocked records a digit once per event, on its first end packet
// (RFC 4733 senders repeat the end packet).
func (r *rtpSession) noteEventLocked(ts uint32, payload []byte) {
	if payload[1]&0x80 == 0 {
		return
	}
	if r.haveEnd && ts == r.lastEndTS {
		return
	}
	r.haveEnd, r.lastEndTS = true, ts
	if d := eventDigit(payload[0]); d != 0 {
		r.digits = append(r.digits, d)
	}
}

// nextHeader allocates the next sequence number; advance moves the media
// clock on by that many samples.
func (r *rtpSession) nextHeader(pt uint8, ts uint32, useTS bool, marker bool, advance uint32) rtp.Header {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	h := rtp.Header{
		Version:        2,
		PayloadType:    pt,
		SequenceNumber: r.seq,
		Timestamp:      r.ts,
		SSRC:           r.ssrc,
		Marker:         marker || !r.started,
	}
	if useTS {
		h.Timestamp = ts
	}
	r.seq++
	r.ts += advance
	r.started = true
	return h
}

func (r *rtpSession) clock() uint32 {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	return r.ts
}

func (r *rtpSession) advance(samples uint32) {
	r.sendMu.Lock()
	r.ts += samples
	r.sendMu.Unlock()
}

func (r *rtpSession) write(dst netip.AddrPort, h rtp.Header, payload []byte) error {
	pkt := rtp.Packet{Header: h, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		return err
	}
	if _, err := r.conn.WriteToUDPAddrPort(b, dst); err != nil {
		return err
	}
	r.sent.Add(1)
	return nil
}

func eventCode(d rune) (byte, bool) {
	switch {
	case d >= '0' && d <= '9':
		return byte(d - '0'), true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return byte(d-'A') + 12, true
	case d >= 'a' && d <= 'd':
		return byte(d-'a') + 12, true
	}
	return 0, false
}

func eventDigit(code byte) byte {
	switch {
	case code <= 9:
		return '0' + code
	case code == 10:
		return '*'
	case code == 11:
		return '#'
	case code <= 15:
		return 'A' + code - 12
	}
	return 0
}
