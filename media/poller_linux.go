package media

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// A poller waits, in one epoll set, on the RTP and RTCP sockets of a share
// of a pool's endpoints and relays what arrives, from one goroutine and
// one read buffer for all of them. A call costs the switch no goroutine
// and no buffer of its own, and a wake-up serves every socket that is
// ready. An endpoint stays on one poller for its life, so its RTP socket's
// feature-code state (rfc4733.go) has a single owner.
//
// A pool runs its pollers while it has endpoints open (PortPool.take
// starts them, release of the last one stops them), so that a pool nobody
// uses leaves no goroutine behind.
type poller struct {
	pool   *PortPool
	epfd   int
	file   *os.File // epfd, waited on by the Go runtime's own poller
	done   chan struct{}
	events [pollEvents]syscall.EpollEvent
	buf    [bufSize + srtpRoom]byte
	armed  time.Time // the read deadline set on file: the first digit deadline

	// due holds the digit deadlines of the poller's endpoints (settle);
	// fired is the poller's own scratch list.
	dueMu sync.Mutex
	due   map[*Endpoint]time.Time
	fired []*Endpoint
}

const pollEvents = 256 // sockets served per epoll_wait at most

// pollerCount is how many pollers a pool runs: one per CPU the Go runtime
// uses, up to 4, so that relaying spreads over the cores.
func pollerCount() int { return min(runtime.GOMAXPROCS(0), 4) }

// newPoller makes the epoll set and starts its goroutine. The set's own
// descriptor is handed to the Go runtime's poller, which wakes the
// goroutine when any socket in it is ready: the goroutine parks as any
// network read does, instead of holding a thread in epoll_wait.
func newPoller(pool *PortPool) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	p := &poller{pool: pool, epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), done: make(chan struct{}), due: map[*Endpoint]time.Time{}}
	rc, err := p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	go p.run(rc)
	return p, nil
}

// add watches fd, the RTP (or RTCP) socket of the pool's pair idx.
func (p *poller) add(fd, idx int, rtcp bool) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(idx)}
	if rtcp {
		ev.Pad = 1
	}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("media: epoll add: %w", err)
	}
	return nil
}

// remove stops watching fd, before it is closed. An event for it that a
// wait has already returned finds the pair empty, or the socket of the
// endpoint that has it since, where a read is just as right.
func (p *poller) remove(fd int) {
	var ev syscall.EpollEvent // ignored, but kernels before 2.6.9 want one
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, &ev)
}

// close stops the goroutine and waits for it; closing the set ends its
// wait.
func (p *poller) close() {
	p.file.Close()
	<-p.done
}

func (p *poller) run(rc syscall.RawConn) {
	defer close(p.done)
	// Made once: a closure made per wake-up would be an allocation.
	serve := func(fd uintptr) bool {
		n := p.wait(int(fd))
		if n <= 0 {
			return false // nothing ready: park until something is
		}
		for i := range n {
			ev := &p.events[i]
			p.ready(int(ev.Fd), ev.Pad != 0)
		}
		return true
	}
	for {
		err := rc.Read(serve)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return // closed
		}
		p.expire()
		p.arm()
	}
}

// wait returns how many sockets of the set are ready, without waiting.
// The call is raw: it cannot block, and the scheduler's syscall
// bookkeeping, paid on every wake-up, would wake its monitor thread.
func (p *poller) wait(epfd int) int {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
	if errno != 0 {
		return 0 // EINTR cannot happen without a wait; EBADF: closed
	}
	return int(n)
}

// ready reads one datagram from a socket of pair idx and relays it. The
// set is level-triggered: a socket with more waiting is ready again in
// the next wait, after every other ready socket has had its turn. Reading
// only one saves the read that would find the socket empty, which is
// most sockets' second read, since a phone sends a packet every 20 ms.
// A flood on one socket costs a wait per datagram instead of one per
// sixteen; its socket buffer still bounds what it can queue.
func (p *poller) ready(idx int, rtcp bool) {
	e := p.pool.slots[idx].Load()
	if e == nil {
		return
	}
	buf := p.buf[:bufSize]
	n, src, errno := e.recv(rtcp, buf)
	switch {
	case errno != 0:
		return // EAGAIN, EBADF, or a transient error such as ICMP feedback
	case n >= len(buf):
		e.drop() // may have been cut short by the kernel
		return
	}
	// p.buf has srtpRoom spare past buf: SRTP works in place.
	e.relay(p.buf[:n], src, rtcp)
}

// setDue sets (or, with a zero at, clears) e's digit deadline, from e's
// packet path; a deadline sooner than the wait's end is seen at the next
// wake-up, and digits wait at most their timeout and the next packet.
func (p *poller) setDue(e *Endpoint, at time.Time) {
	p.dueMu.Lock()
	defer p.dueMu.Unlock()
	if at.IsZero() {
		delete(p.due, e)
		return
	}
	p.due[e] = at
}

// arm sets the wait's deadline to the first digit deadline, if it moved.
func (p *poller) arm() {
	p.dueMu.Lock()
	var first time.Time
	for _, at := range p.due {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	p.dueMu.Unlock()
	if !first.Equal(p.armed) {
		p.armed = first
		p.file.SetReadDeadline(first)
	}
}

// expire passes on the withheld digits whose deadline has come.
func (p *poller) expire() {
	p.dueMu.Lock()
	if len(p.due) == 0 {
		p.dueMu.Unlock()
		return
	}
	now := time.Now()
	p.fired = p.fired[:0]
	for e, at := range p.due {
		if !now.Before(at) {
			p.fired = append(p.fired, e)
			delete(p.due, e)
		}
	}
	p.dueMu.Unlock()
	for _, e := range p.fired {
		if !e.closed.Load() {
			e.digitsTimedOut()
		}
	}
	clear(p.fired)
}
