package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// bufSize is the per-socket read buffer: more than an Ethernet MTU (G.711 at
// 20 ms is 172 bytes). A datagram that fills the whole buffer may have been
// truncated by the kernel and is dropped rather than relayed cut short.
const bufSize = 2048

// srtpRoom is what SRTP adds to a packet (auth tag, and the SRTCP index):
// the read buffers have it spare so that packets are encrypted in place.
const srtpRoom = authTagLen + 4

// Endpoint is one call leg's media anchor on the switch: the RTP/RTCP socket
// pair whose address is written into that leg's SDP. Packets received on it
// are relayed to the endpoint it is bridged with, which sends them to its own
// remote from its own sockets (symmetric RTP, RFC 4961).
//
// Source checking and latching, which let phones behind NAT work without
// letting anyone else inject media, apply to the RTP and the RTCP socket
// separately:
//
//   - Until SetRemote is called nothing is accepted: there is nobody to
//     compare a source with, and latching onto a stranger would hand the
//     call's audio to whoever sends first.
//   - The first packet from the signaled address locks the path onto it.
//   - The first packet from another address locks the path onto that source,
//     and the replies go there from then on, only when
//     (a) it has the signaled IP with another port (a NAT rewrote the port,
//     or the phone sends from another socket than it announced),
//     (b) the signaled IP is unspecified (0.0.0.0, old-style hold), or
//     (c) the signaled IP is private (RFC 1918, RFC 6598, ULA, link-local)
//     and the source is public: the phone wrote its LAN address behind a
//     NAT, which the switch cannot reach.
//     Any other source is dropped and the path stays open.
//   - Once locked, packets from any other source are dropped and counted in
//     Dropped until the next SetRemote.
//
// The signaled RTCP address is the RTP port + 1 on the same IP; an a=rtcp
// port on that IP is found by rule (a). With rtcp-mux the remote's RTCP
// arrives on the RTP socket and is sent to it there.
type Endpoint struct {
	pool   *PortPool
	idx    int
	addr   netip.AddrPort
	poller *poller // waits on both sockets and owns the RTP socket's digit state

	// The sockets (socket_linux.go): used under fdMu's read lock, closed
	// under its write lock, -1 once closed.
	fdMu   sync.RWMutex
	rtpFD  int
	rtcpFD int

	remote atomic.Pointer[remote]
	peer   atomic.Pointer[Endpoint]
	closed atomic.Bool

	crypto   atomic.Pointer[cryptoState] // SRTP keys; empty for plain RTP
	cryptoMu sync.Mutex                  // serialises SetSRTP
	// authFailed counts SRTP packets that failed authentication or
	// replay checks (also counted in dropped).
	authFailed atomic.Uint64

	packetsIn  atomic.Uint64
	bytesIn    atomic.Uint64
	packetsOut atomic.Uint64
	bytesOut   atomic.Uint64
	dropped    atomic.Uint64
	last       atomic.Int64 // unix nanoseconds of the last accepted packet
	// quiet is when the silence clock last started over (unix nanoseconds):
	// the media was renegotiated or bridged, so older silence says nothing.
	quiet atomic.Int64

	// DTMF feature code detection (rfc4733.go): trap selects the
	// packets that take its path, watch is its configuration and digits
	// its state, owned by the poller's goroutine.
	trap           atomic.Uint32
	watch          atomic.Pointer[DigitWatch]
	digits         digitState
	digitsWithheld atomic.Uint64
	digitsReplayed atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// remote is immutable once published; latching publishes a copy.
type remote struct {
	mux  bool
	rtp  path
	rtcp path
}

// path is the source check and the send destination of one socket.
type path struct {
	signaled netip.AddrPort // from SDP
	dst      netip.AddrPort // where to send: signaled, or the latched source
	locked   bool           // a source is latched; others are dropped
}

var emptyRemote = &remote{}

func newEndpoint(p *PortPool, idx, rtp, rtcp int, pl *poller) *Endpoint {
	e := &Endpoint{
		pool:   p,
		idx:    idx,
		addr:   netip.AddrPortFrom(p.ip, uint16(p.base+2*idx)),
		poller: pl,
		rtpFD:  rtp,
		rtcpFD: rtcp,
	}
	e.remote.Store(emptyRemote)
	e.crypto.Store(&cryptoState{})
	e.trap.Store(trapWord(trapNone, false, false))
	e.quiet.Store(time.Now().UnixNano())
	openEndpoints.Add(1)
	return e
}

// Addr is the local RTP address; RTCP is on the next port. The IP is the one
// the pool binds, which may differ from the one the SIP layer advertises.
func (e *Endpoint) Addr() netip.AddrPort { return e.addr }

// SetRemote sets the address the leg's SDP signals (c= and the audio m= port)
// and whether rtcp-mux was negotiated. It always resets latching, so that a
// leg that moved is found again; a re-INVITE that keeps the address need not
// call it. An invalid address or port 0 (a disabled stream) accepts nothing.
// It also starts the silence clock over (see SilentFor).
func (e *Endpoint) SetRemote(rtp netip.AddrPort, rtcpMux bool) {
	e.quiet.Store(time.Now().UnixNano())
	rtp = netip.AddrPortFrom(rtp.Addr().Unmap(), rtp.Port())
	var rtcp netip.AddrPort
	if rtp.IsValid() && rtp.Port() != 0 && rtp.Port() < 65535 {
		rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}
	e.remote.Store(&remote{
		mux:  rtcpMux,
		rtp:  path{signaled: rtp, dst: rtp},
		rtcp: path{signaled: rtcp, dst: rtcp},
	})
}

// Stats is a snapshot of an endpoint's counters.
type Stats struct {
	PacketsIn  uint64 // accepted from the remote (RTP and RTCP)
	BytesIn    uint64
	PacketsOut uint64 // sent to the remote
	BytesOut   uint64
	// Dropped counts packets received and not relayed: malformed, from a
	// source other than the remote, failing SRTP authentication, no
	// bridge, or no destination yet.
	Dropped uint64
	// AuthFailed counts SRTP/SRTCP packets refused as forged or replayed.
	AuthFailed uint64
	// DigitsWithheld counts telephone-event packets not relayed as part
	// of a possible feature code; DigitsReplayed those regenerated for
	// the peer once they were not (see WatchDigits).
	DigitsWithheld uint64
	DigitsReplayed uint64
	// LastPacket is when the last packet was accepted from the remote (zero
	// if none); the media timeout of a call is measured from it.
	LastPacket time.Time
	Remote     netip.AddrPort // current RTP destination
	Latched    bool           // the RTP path is locked onto a source
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	r := e.remote.Load()
	s := Stats{
		PacketsIn:  e.packetsIn.Load(),
		BytesIn:    e.bytesIn.Load(),
		PacketsOut: e.packetsOut.Load(),
		BytesOut:   e.bytesOut.Load(),
		Dropped:    e.dropped.Load(),
		AuthFailed: e.authFailed.Load(),
		Remote:     r.rtp.dst,
		Latched:    r.rtp.locked,

		DigitsWithheld: e.digitsWithheld.Load(),
		DigitsReplayed: e.digitsReplayed.Load(),
	}
	if ns := e.last.Load(); ns != 0 {
		s.LastPacket = time.Unix(0, ns)
	}
	return s
}

// SilentFor is how long the endpoint has gone without a packet from its
// remote, counted from the last packet or from the last SetRemote or Bridge,
// whichever is later: a leg that was held or parked, and so rightly silent,
// gets a full timeout once its media is renegotiated or bridged again.
func (e *Endpoint) SilentFor(now time.Time) time.Duration {
	since := max(e.last.Load(), e.quiet.Load())
	return now.Sub(time.Unix(0, since))
}

// WriteRTP sends a packet the switch generates itself (music on hold) to the
// remote, from the endpoint's RTP socket; on an SRTP leg it is encrypted
// with the leg's key (into the endpoint's own buffer: pkt is not changed).
func (e *Endpoint) WriteRTP(pkt []byte) error {
	dst := e.remote.Load().rtp.dst
	if !sendable(dst) {
		return ErrNoRemote
	}
	if out := e.crypto.Load().out; out != nil {
		if len(pkt) > bufSize {
			return errors.New("media: packet too long")
		}
		out.mu.Lock()
		defer out.mu.Unlock()
		enc, ok := out.encryptInPlace(out.buf[:copy(out.buf[:], pkt)], false)
		if !ok {
			return errors.New("media: SRTP encryption failed")
		}
		pkt = enc
	}
	if err := e.send(false, pkt, dst); err != nil {
		return err
	}
	e.packetsOut.Add(1)
	e.bytesOut.Add(uint64(len(pkt)))
	return nil
}

// ErrNoRemote is returned by WriteRTP before the remote address is known
// (no SetRemote yet, a disabled stream or c=0.0.0.0 not latched).
var ErrNoRemote = errors.New("media: remote address not known")

// Close stops relaying, closes the sockets and returns its ports to the
// pool. It is idempotent; concurrent callers all return once it is done.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		bridgeMu.Lock()
		e.closed.Store(true)
		detach(e)
		e.peer.Store(nil)
		bridgeMu.Unlock()

		e.fdMu.Lock()
		e.poller.remove(e.rtpFD)
		e.poller.remove(e.rtcpFD)
		e.closeErr = errors.Join(closeFD(e.rtpFD), closeFD(e.rtcpFD))
		e.rtpFD, e.rtcpFD = -1, -1
		e.fdMu.Unlock()
		e.pool.slots[e.idx].CompareAndSwap(e, nil)
		e.pool.release(e.idx)
		openEndpoints.Add(-1)
	})
	return e.closeErr
}

// recv reads one datagram from the RTP (or RTCP) socket without waiting.
func (e *Endpoint) recv(rtcp bool, buf []byte) (int, netip.AddrPort, syscall.Errno) {
	e.fdMu.RLock()
	defer e.fdMu.RUnlock()
	fd := e.rtpFD
	if rtcp {
		fd = e.rtcpFD
	}
	if fd < 0 {
		return 0, netip.AddrPort{}, syscall.EBADF
	}
	return recvFrom(fd, buf)
}

// send sends pkt to dst from the RTP (or RTCP) socket without waiting.
func (e *Endpoint) send(rtcp bool, pkt []byte, dst netip.AddrPort) error {
	e.fdMu.RLock()
	defer e.fdMu.RUnlock()
	fd := e.rtpFD
	if rtcp {
		fd = e.rtcpFD
	}
	if fd < 0 {
		return net.ErrClosed
	}
	return sendTo(fd, pkt, dst)
}

// bridgeMu serialises re-wiring so that two bridges never share an endpoint;
// the packet path only reads the peer pointers.
var bridgeMu sync.Mutex

// Bridge relays RTP and RTCP received on a to b's remote (sent from b) and
// received on b to a's remote. An endpoint bridged before is first detached
// from its previous peer, which then relays nowhere until bridged again; the
// new peer replaces the old one in a single atomic store, so no packet sees
// a half-built bridge. Bridging a closed endpoint does nothing.
func Bridge(a, b *Endpoint) {
	bridgeMu.Lock()
	defer bridgeMu.Unlock()
	if a.closed.Load() || b.closed.Load() {
		return
	}
	// Re-bridging the same pair must not open a gap with no peer.
	if a.peer.Load() != b {
		detach(a)
	}
	if b.peer.Load() != a {
		detach(b)
	}
	a.peer.Store(b)
	b.peer.Store(a)
	now := time.Now().UnixNano()
	a.quiet.Store(now)
	b.quiet.Store(now)
}

// Unbridge stops relaying between e and its peer in both directions.
func (e *Endpoint) Unbridge() {
	bridgeMu.Lock()
	defer bridgeMu.Unlock()
	detach(e)
	e.peer.Store(nil)
}

// detach makes e's current peer stop relaying to e. Caller holds bridgeMu.
func detach(e *Endpoint) {
	if p := e.peer.Load(); p != nil && p != e {
		p.peer.CompareAndSwap(e, nil)
	}
}

// relay checks one received packet and sends it on through the peer. It is
// the whole per-packet path and must not allocate (TestRelayAllocs,
// TestSRTPRelayAllocs, TestDigitRelayAllocs). pkt's buffer has srtpRoom
// spare bytes past its end: SRTP is decrypted and encrypted in place.
// Feature code detection costs one compare of the payload type byte until
// digits flow (see rfc4733.go).
func (e *Endpoint) relay(pkt []byte, src netip.AddrPort, rtcpSocket bool) {
	isRTCP := rtcpSocket || looksRTCP(pkt)
	if isRTCP && !validRTCP(pkt) || !isRTCP && !validRTP(pkt) {
		e.drop()
		return
	}
	// SRTP is authenticated before the source check, so that only a
	// genuine packet can latch the path.
	if in := e.crypto.Load().in; in != nil {
		var ok bool
		if pkt, ok = in.decrypt(pkt, isRTCP); !ok {
			e.authFailed.Add(1)
			e.drop()
			return
		}
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if !e.accept(src, rtcpSocket) {
		e.drop()
		return
	}
	e.packetsIn.Add(1)
	e.bytesIn.Add(uint64(len(pkt)))
	e.last.Store(time.Now().UnixNano())

	peer := e.peer.Load()
	if peer == nil {
		e.drop()
		return
	}
	if t := e.trap.Load(); !isRTCP && pkt[1]&byte(t>>8) == byte(t) && e.digitPacket(pkt, peer) {
		return // withheld
	}
	if !e.forward(peer, pkt, isRTCP) {
		e.drop()
	}
}

// forward sends pkt to peer's remote from peer's sockets, encrypted with
// peer's key on an SRTP leg, and counts it; false when it could not.
func (e *Endpoint) forward(peer *Endpoint, pkt []byte, isRTCP bool) bool {
	r := peer.remote.Load()
	rtcpSocket, dst := false, r.rtp.dst
	if isRTCP && !r.mux {
		rtcpSocket, dst = true, r.rtcp.dst
	}
	if !sendable(dst) {
		return false
	}
	if out := peer.crypto.Load().out; out != nil {
		// The lock also keeps the SRTP index in sending order against
		// music on hold written to the same leg.
		out.mu.Lock()
		enc, ok := out.encryptInPlace(pkt, isRTCP)
		var err error
		if ok {
			err = peer.send(rtcpSocket, enc, dst)
		}
		out.mu.Unlock()
		if !ok || err != nil {
			return false
		}
		pkt = enc
	} else if err := peer.send(rtcpSocket, pkt, dst); err != nil {
		return false
	}
	peer.packetsOut.Add(1)
	peer.bytesOut.Add(uint64(len(pkt)))
	relayedPackets.Add(1)
	relayedBytes.Add(uint64(len(pkt)))
	return true
}

func (e *Endpoint) drop() {
	e.dropped.Add(1)
	droppedPackets.Add(1)
}

// accept applies the source check of the path the packet came in on,
// latching it when the rule in the Endpoint documentation allows.
func (e *Endpoint) accept(src netip.AddrPort, rtcpSocket bool) bool {
	for {
		r := e.remote.Load()
		p := &r.rtp
		if rtcpSocket {
			p = &r.rtcp
		}
		if p.locked {
			return src == p.dst
		}
		if src != p.signaled && !canLatch(p.signaled, src) {
			return false
		}
		// Latching is rare (once per SetRemote), so copying here keeps the
		// common path to one atomic load.
		n := *r
		np := &n.rtp
		if rtcpSocket {
			np = &n.rtcp
		}
		np.dst, np.locked = src, true
		if e.remote.CompareAndSwap(r, &n) {
			return true
		}
		// SetRemote or the other socket's reader won the race: decide again.
	}
}

// canLatch reports whether a path signaled at signaled may lock onto src,
// which is not the signaled address (see Endpoint).
func canLatch(signaled, src netip.AddrPort) bool {
	if !signaled.IsValid() || signaled.Port() == 0 || !src.IsValid() {
		return false
	}
	s, a := signaled.Addr(), src.Addr()
	switch {
	case s == a:
		return true
	case s.IsUnspecified():
		return true
	case isPrivate(s) && isPublic(a):
		return true
	}
	return false
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598 shared address space

func isPrivate(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLinkLocalUnicast() || cgnat.Contains(a)
}

func isPublic(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !isPrivate(a)
}

func sendable(dst netip.AddrPort) bool {
	return dst.IsValid() && dst.Port() != 0 && !dst.Addr().IsUnspecified()
}

// looksRTCP tells RTCP from RTP on a multiplexed socket by the packet type
// byte (RFC 5761 §4): RTCP types 192-223 are not valid RTP payload types
// there.
func looksRTCP(pkt []byte) bool {
	return len(pkt) >= 2 && pkt[1] >= 192 && pkt[1] <= 223
}

// validRTP accepts version 2 with room for the fixed header and its CSRCs;
// the rest is the endpoints' business (no transcoding here).
func validRTP(pkt []byte) bool {
	return len(pkt) >= 12 && pkt[0]>>6 == 2 && len(pkt) >= 12+4*int(pkt[0]&0x0f)
}

// validRTCP accepts version 2 with at least a header and a sender SSRC.
func validRTCP(pkt []byte) bool {
	return len(pkt) >= 8 && pkt[0]>>6 == 2
}
