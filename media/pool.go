package media

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
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
	ip   netip.Addr
	base int // first RTP port (even)

	// slots holds the open endpoint of each pair, for the pollers.
	slots []atomic.Pointer[Endpoint]

	mu      sync.Mutex
	used    []bool // by pair index
	inUse   int
	next    int       // where the next search starts
	pollers []*poller // running while inUse > 0
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
	return &PortPool{ip: ip, base: first, used: make([]bool, n), slots: make([]atomic.Pointer[Endpoint], n)}, nil
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
		idx, err := p.take()
		if err != nil {
			return nil, err
		}
		e, err := p.open(idx)
		if err != nil {
			lastErr = err
			continue
		}
		return e, nil
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
	if err := p.reserveLocked(idx); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()
	e, err := p.open(idx)
	if err != nil {
		return nil, fmt.Errorf("%w: port %d: %v", ErrNoPorts, port, err)
	}
	return e, nil
}

// open binds the reserved pair idx and starts relaying on it; on failure
// the pair is released.
func (p *PortPool) open(idx int) (*Endpoint, error) {
	port := p.base + 2*idx
	rtp, err := openUDP(netip.AddrPortFrom(p.ip, uint16(port)))
	if err != nil {
		p.release(idx)
		return nil, err
	}
	rtcp, err := openUDP(netip.AddrPortFrom(p.ip, uint16(port+1)))
	if err != nil {
		closeFD(rtp)
		p.release(idx)
		return nil, err
	}
	p.mu.Lock()
	pl := p.pollers[idx%len(p.pollers)]
	p.mu.Unlock()
	e := newEndpoint(p, idx, rtp, rtcp, pl)
	p.slots[idx].Store(e)
	if err := pl.add(rtp, idx, false); err != nil {
		e.Close()
		return nil, err
	}
	if err := pl.add(rtcp, idx, true); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// reserveLocked marks pair idx used, starting the pollers for the first
// one. It needs p.mu.
func (p *PortPool) reserveLocked(idx int) error {
	if p.inUse == 0 {
		for range pollerCount() {
			pl, err := newPoller(p)
			if err != nil {
				p.stopPollersLocked()
				return fmt.Errorf("%w: %v", ErrNoPorts, err)
			}
			p.pollers = append(p.pollers, pl)
		}
	}
	p.used[idx] = true
	p.inUse++
	return nil
}

func (p *PortPool) stopPollersLocked() {
	for _, pl := range p.pollers {
		pl.close()
	}
	p.pollers = nil
}

// take reserves the next free pair round-robin: a just-released pair is the
// last to be reused, so late packets of an ended call do not reach a new one.
func (p *PortPool) take() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.used)
	for i := range n {
		idx := (p.next + i) % n
		if !p.used[idx] {
			if err := p.reserveLocked(idx); err != nil {
				return 0, err
			}
			p.next = (idx + 1) % n
			return idx, nil
		}
	}
	return 0, ErrNoPorts
}

// release returns pair idx; the last one stops the pollers.
func (p *PortPool) release(idx int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[idx] {
		p.used[idx] = false
		p.inUse--
		if p.inUse == 0 {
			p.stopPollersLocked()
		}
	}
}
