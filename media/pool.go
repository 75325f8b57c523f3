package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrNoPorts is returned by Open when no port pair can be had: every pair of
// the pool is in use, or the operating system refused every pair tried.
var ErrNoPorts = errors.New("media: no free RTP port pair")

// maxBindAttempts bounds how many pairs Open tries when the operating system
// refuses ports (another process holds them), so that a pool shared with a
// busy host fails fast instead of scanning the whole range under load.
const maxBindAttempts = 32

// PortPool hands out RTP/RTCP port pairs (even RTP port, RTCP = RTP+1) from
// [minPort,maxPort] on one IP. It is safe for concurrent use.
type PortPool struct {
	ip      netip.Addr
	network string
	base    int // first RTP port (even)

	mu    sync.Mutex
	used  []bool // by pair index
	inUse int
	next  int // where the next search starts
}

// NewPortPool returns a pool of the pairs in [minPort,maxPort] on ip. An odd
// minPort is moved up to the next even port, since RTP takes the even port of
// a pair (RFC 3550 §11).
func NewPortPool(ip netip.Addr, minPort, maxPort int) (*PortPool, error) {
	if !ip.IsValid() {
		return nil, errors.New("media: port pool needs an IP address")
	}
	if minPort < 1 || maxPort > 65535 || minPort > maxPort {
		return nil, fmt.Errorf("media: bad RTP port range %d-%d", minPort, maxPort)
	}
	first := minPort + minPort%2
	n := (maxPort - first + 1) / 2
	if n < 1 {
		return nil, fmt.Errorf("media: RTP port range %d-%d holds no even/odd pair", minPort, maxPort)
	}
	ip = ip.Unmap()
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	return &PortPool{ip: ip, network: network, base: first, used: make([]bool, n)}, nil
}

// Capacity is the number of pairs the pool can hand out.
func (p *PortPool) Capacity() int { return len(p.used) }

// InUse is the number of pairs currently allocated; it is back to 0 once
// every endpoint is closed.
func (p *PortPool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// Open binds a free RTP/RTCP socket pair and starts relaying on it. Pairs the
// operating system refuses are skipped, up to a bounded number of attempts.
func (p *PortPool) Open() (*Endpoint, error) {
	attempts := min(len(p.used), maxBindAttempts)
	var lastErr error
	for range attempts {
		idx, ok := p.take()
		if !ok {
			return nil, ErrNoPorts
		}
		rtp, rtcp, err := p.bind(p.base + 2*idx)
		if err != nil {
			p.release(idx)
			lastErr = err
			continue
		}
		return newEndpoint(p, idx, rtp, rtcp), nil
	}
	return nil, fmt.Errorf("%w: %d pairs refused, last: %v", ErrNoPorts, attempts, lastErr)
}

// OpenPort binds the pair whose RTP port is port, for a leg that must keep
// its address (a parked call restored after a restart: the phone's
// latching and NAT binding hold). It fails with ErrNoPorts when the pair is
// in use, outside the pool, or refused by the operating system.
func (p *PortPool) OpenPort(port int) (*Endpoint, error) {
	idx := (port - p.base) / 2
	if port < p.base || port%2 != p.base%2 || idx >= len(p.used) {
		return nil, fmt.Errorf("%w: port %d is not an RTP port of the pool", ErrNoPorts, port)
	}
	p.mu.Lock()
	if p.used[idx] {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: port %d is in use", ErrNoPorts, port)
	}
	p.used[idx] = true
	p.inUse++
	p.mu.Unlock()
	rtp, rtcp, err := p.bind(port)
	if err != nil {
		p.release(idx)
		return nil, fmt.Errorf("%w: port %d: %v", ErrNoPorts, port, err)
	}
	return newEndpoint(p, idx, rtp, rtcp), nil
}

// take reserves the next free pair round-robin: a just-released pair is the
// last to be reused, so late packets of an ended call do not reach a new one.
func (p *PortPool) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.used)
	for i := range n {
		idx := (p.next + i) % n
		if !p.used[idx] {
			p.used[idx] = true
			p.inUse++
			p.next = (idx + 1) % n
			return idx, true
		}
	}
	return 0, false
}

func (p *PortPool) release(idx int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[idx] {
		p.used[idx] = false
		p.inUse--
	}
}

func (p *PortPool) bind(port int) (rtp, rtcp *net.UDPConn, err error) {
	rtp, err = net.ListenUDP(p.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
	if err != nil {
		return nil, nil, err
	}
	rtcp, err = net.ListenUDP(p.network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port+1))))
	if err != nil {
		rtp.Close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}
