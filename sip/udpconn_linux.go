package sip

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// rawUDPConn is a SIP UDP listener whose datagrams go in and out with one
// raw system call each. Through the standard library every send and
// receive enters the Go scheduler's syscall state, and a switch that goes
// idle between messages wakes the runtime's monitor thread on each one,
// which then polls at 20 µs for a millisecond and hands the P of a slow
// send to another thread. A non-blocking sendto or recvfrom on a datagram
// socket does not block, so it needs none of that. The calls run inside
// the socket's RawConn, which keeps the descriptor from being closed (and
// its number reused) while they run, and waits in the runtime's poller
// when the kernel has no room for a send or nothing to read. A send goes
// through Control first, which takes no lock: RawConn.Write serialises
// writers on the descriptor's write lock, and on a listener that every
// transaction sends from, goroutines queued on it and were woken one by
// one, though datagram sends need no order among themselves.
type rawUDPConn struct {
	*net.UDPConn
	raw syscall.RawConn
	v6  bool // the socket is AF_INET6 (an IPv4 peer is v4-mapped)
}

// newRawUDPConn wraps uc, or returns it as it is when its socket cannot be
// read.
func newRawUDPConn(uc *net.UDPConn) net.PacketConn {
	raw, err := uc.SyscallConn()
	if err != nil {
		return uc
	}
	var sa syscall.Sockaddr
	if err := raw.Control(func(fd uintptr) { sa, err = syscall.Getsockname(int(fd)) }); err != nil || sa == nil {
		return uc
	}
	c := &rawUDPConn{UDPConn: uc, raw: raw}
	_, c.v6 = sa.(*syscall.SockaddrInet6)
	return c
}

// WriteTo sends b to addr in one raw sendto, waiting in the poller (and
// for the write lock) only while the socket's buffer is full; an address
// the raw path does not take goes as net.UDPConn sends it.
func (c *rawUDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || len(b) == 0 {
		return c.UDPConn.WriteTo(b, addr)
	}
	op := getSockOp(b)
	defer putSockOp(op)
	if !op.sa.set(ua, c.v6) {
		return c.UDPConn.WriteTo(b, addr)
	}
	err := c.raw.Control(op.sendNow)
	if err == nil && op.blocked {
		err = c.raw.Write(op.send)
	}
	if err := op.result(err); err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
	}
	return op.n, nil
}

// ReadFrom reads one datagram: a raw recvfrom, and when nothing is
// waiting, a wait in the runtime's poller for the socket to be readable.
func (c *rawUDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if len(b) == 0 {
		return c.UDPConn.ReadFrom(b)
	}
	op := getSockOp(b)
	defer putSockOp(op)
	if err := op.result(c.raw.Read(op.recv)); err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	return op.n, op.sa.udpAddr(), nil
}

// sockOp is one send or receive on a listener: its buffer, the peer's
// address and the outcome, with the RawConn functions bound to it once, so
// that a datagram costs no closure. They report false (wait for the
// socket, then call again) when the kernel would block.
type sockOp struct {
	buf        []byte
	sa         rawSockaddr
	n          int
	errno      syscall.Errno
	blocked    bool // sendNow found the socket's buffer full
	send, recv func(fd uintptr) bool
	sendNow    func(fd uintptr)
}

var sockOps = sync.Pool{New: func() any {
	op := new(sockOp)
	op.send, op.recv, op.sendNow = op.sendTo, op.recvFrom, op.trySend
	return op
}}

func getSockOp(buf []byte) *sockOp {
	op := sockOps.Get().(*sockOp)
	op.buf, op.n, op.errno, op.blocked = buf, 0, 0, false
	return op
}

func putSockOp(op *sockOp) {
	op.buf = nil // the caller's buffer is not the pool's to keep
	sockOps.Put(op)
}

func (op *sockOp) sendTo(fd uintptr) bool {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&op.buf[0])), uintptr(len(op.buf)),
		syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&op.sa.any)), uintptr(op.sa.len))
	return op.done(n, errno)
}

// trySend is sendTo once, for RawConn.Control.
func (op *sockOp) trySend(fd uintptr) { op.blocked = !op.sendTo(fd) }

func (op *sockOp) recvFrom(fd uintptr) bool {
	op.sa.len = syscall.SizeofSockaddrAny
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&op.buf[0])), uintptr(len(op.buf)),
		syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&op.sa.any)), uintptr(unsafe.Pointer(&op.sa.len)))
	return op.done(n, errno)
}

func (op *sockOp) done(n uintptr, errno syscall.Errno) bool {
	if errno == syscall.EAGAIN || errno == syscall.EINTR {
		return false
	}
	op.n, op.errno = int(n), errno
	return true
}

// result is the operation's error: the RawConn's (closed, deadline) or the
// system call's.
func (op *sockOp) result(err error) error {
	if err == nil && op.errno != 0 {
		return op.errno
	}
	return err
}

// rawSockaddr is a socket address in the kernel's layout.
type rawSockaddr struct {
	any syscall.RawSockaddrAny
	len uint32
}

// set stores addr for a socket of the family v6 says; false when the
// socket cannot reach it (an IPv6 peer from an IPv4 socket).
func (r *rawSockaddr) set(addr *net.UDPAddr, v6 bool) bool {
	ip, ok := netip.AddrFromSlice(addr.IP)
	if !ok || addr.Port < 0 || addr.Port > 65535 || addr.Zone != "" {
		return false
	}
	ip = ip.Unmap()
	port := uint16(addr.Port)
	if !v6 {
		if !ip.Is4() {
			return false
		}
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&r.any))
		*sa = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ip.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
		r.len = syscall.SizeofSockaddrInet4
		return true
	}
	sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&r.any))
	*sa = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: ip.As16()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
	r.len = syscall.SizeofSockaddrInet6
	return true
}

// udpAddr is the address as the standard library returns a peer's.
func (r *rawSockaddr) udpAddr() *net.UDPAddr {
	switch r.any.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&r.any))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return &net.UDPAddr{IP: net.IP(append(make([]byte, 0, 4), sa.Addr[:]...)), Port: int(port)}
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&r.any))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		ip := netip.AddrFrom16(sa.Addr)
		if ip.Is4In6() {
			a4 := ip.As4()
			return &net.UDPAddr{IP: net.IP(a4[:]), Port: int(port)}
		}
		a := &net.UDPAddr{IP: net.IP(ip.AsSlice()), Port: int(port)}
		if sa.Scope_id != 0 {
			a.Zone = strconv.FormatUint(uint64(sa.Scope_id), 10) // a link-local peer's interface, by index
		}
		return a
	}
	return &net.UDPAddr{}
}
