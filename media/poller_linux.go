package media

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	wake   [2]int // a pipe: a byte written to wake[1] ends the wait
	stop   atomic.Bool
	done   chan struct{}
	events [pollEvents]syscall.EpollEvent
	buf    [bufSize + srtpRoom]byte

	// due holds the digit deadlines of the poller's endpoints (settle);
	// fired is the poller's own scratch list.
	dueMu sync.Mutex
	due   map[*Endpoint]time.Time
	fired []*Endpoint
}

const (
	pollEvents = 256 // sockets served per wake-up at most
	readBurst  = 16  // datagrams read from one socket before the next one's turn
	wakeSlot   = -1  // the epoll data of the wake pipe
)

// pollerCount is how many pollers a pool runs: one per CPU the Go runtime
// uses, up to 4, so that relaying spreads over the cores.
func pollerCount() int { return min(runtime.GOMAXPROCS(0), 4) }

func newPoller(pool *PortPool) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	p := &poller{pool: pool, epfd: epfd, wake: [2]int{-1, -1}, done: make(chan struct{}), due: map[*Endpoint]time.Time{}}
	if err := syscall.Pipe2(p.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("media: poller pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeSlot}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("media: poller pipe: %w", err)
	}
	go p.run()
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

// close stops the goroutine and waits for it.
func (p *poller) close() {
	p.stop.Store(true)
	_, _ = syscall.Write(p.wake[1], []byte{0})
	<-p.done
	p.closeFDs()
}

func (p *poller) closeFDs() {
	for _, fd := range []int{p.wake[0], p.wake[1], p.epfd} {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

func (p *poller) run() {
	defer close(p.done)
	for {
		n, err := syscall.EpollWait(p.epfd, p.events[:], p.timeout())
		if err != nil && !errors.Is(err, syscall.EINTR) {
			// Not expected with valid descriptors; wait a little rather
			// than spin until close ends the loop.
			time.Sleep(10 * time.Millisecond)
		}
		for i := range max(n, 0) {
			ev := &p.events[i]
			if ev.Fd == wakeSlot {
				if p.stop.Load() {
					return
				}
				var b [64]byte
				_, _ = syscall.Read(p.wake[0], b[:])
				continue
			}
			p.ready(int(ev.Fd), ev.Pad != 0)
		}
		p.expire()
	}
}

// ready reads what is waiting on a socket of pair idx and relays it.
func (p *poller) ready(idx int, rtcp bool) {
	e := p.pool.slots[idx].Load()
	if e == nil {
		return
	}
	buf := p.buf[:bufSize]
	for range readBurst {
		n, src, errno := e.recv(rtcp, buf)
		switch {
		case errno == syscall.EAGAIN || errno == syscall.EBADF:
			return
		case errno != 0:
			continue // a transient error (e.g. ICMP feedback) is no reason to stop
		case n >= len(buf):
			e.drop() // may have been cut short by the kernel
			continue
		}
		// p.buf has srtpRoom spare past buf: SRTP works in place.
		e.relay(p.buf[:n], src, rtcp)
	}
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

// timeout is the wait until the first digit deadline, in milliseconds
// rounded up; -1 for none.
func (p *poller) timeout() int {
	p.dueMu.Lock()
	defer p.dueMu.Unlock()
	if len(p.due) == 0 {
		return -1
	}
	var first time.Time
	for _, at := range p.due {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	d := time.Until(first)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
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
