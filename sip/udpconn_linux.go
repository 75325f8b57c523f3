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
// socket does not block, so it needs none of that. A send the kernel
// cannot take at once (a full buffer) and every read that finds nothing
// waiting go through the standard library's poller as before.
//
// The descriptor is used under mu's read lock and the socket closed under
// its write lock, so that a send never reaches a descriptor number the
// kernel has handed to another file.
type rawUDPConn struct {
	*net.UDPConn
	raw syscall.RawConn
	v6  bool // the socket is AF_INET6 (an IPv4 peer is v4-mapped)

	mu     sync.RWMutex
	fd     int
	closed bool

	// The one read in progress: sipgo reads a listener from one goroutine,
	// and readMu keeps any other caller from sharing these fields.
	readMu  sync.Mutex
	readBuf []byte
	readN   int
	readSrc rawSockaddr
	readErr syscall.Errno
	readFn  func(fd uintptr) bool
}

// newRawUDPConn wraps uc, or returns it as it is when its descriptor
// cannot be had.
func newRawUDPConn(uc *net.UDPConn) net.PacketConn {
	raw, err := uc.SyscallConn()
	if err != nil {
		return uc
	}
	c := &rawUDPConn{UDPConn: uc, raw: raw, fd: -1}
	if err := raw.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil || c.fd < 0 {
		return uc
	}
	sa, err := syscall.Getsockname(c.fd)
	if err != nil {
		return uc
	}
	_, c.v6 = sa.(*syscall.SockaddrInet6)
	c.readFn = c.tryRead
	return c
}

// WriteTo sends b to addr in one raw sendto when the kernel takes it at
// once, else as net.UDPConn does.
func (c *rawUDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || len(b) == 0 {
		return c.UDPConn.WriteTo(b, addr)
	}
	var sa rawSockaddr
	if !sa.set(ua, c.v6) {
		return c.UDPConn.WriteTo(b, addr)
	}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return c.UDPConn.WriteTo(b, addr) // the standard library's error
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa.any)), uintptr(sa.len))
	c.mu.RUnlock()
	switch errno {
	case 0:
		return int(n), nil
	case syscall.EAGAIN, syscall.EINTR:
		return c.UDPConn.WriteTo(b, addr) // waits for room as it always did
	}
	return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: errno}
}

// ReadFrom reads one datagram: a raw recvfrom, and when nothing is
// waiting, a wait in the runtime's poller for the socket to be readable.
func (c *rawUDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if len(b) == 0 {
		return c.UDPConn.ReadFrom(b)
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.readBuf, c.readErr = b, 0
	err := c.raw.Read(c.readFn)
	c.readBuf = nil
	if err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	if c.readErr != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: c.readErr}
	}
	return c.readN, c.readSrc.udpAddr(), nil
}

// tryRead is the poller's read function: false asks it to wait.
func (c *rawUDPConn) tryRead(fd uintptr) bool {
	c.readSrc.len = syscall.SizeofSockaddrAny
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.readBuf[0])), uintptr(len(c.readBuf)),
		syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&c.readSrc.any)), uintptr(unsafe.Pointer(&c.readSrc.len)))
	switch errno {
	case 0:
		c.readN = int(n)
		return true
	case syscall.EAGAIN, syscall.EINTR:
		return false
	}
	c.readErr = errno
	return true
}

// Close closes the socket once no send is using its descriptor.
func (c *rawUDPConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.UDPConn.Close()
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
