package media

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"
)

// The relay's sockets are plain non-blocking file descriptors, outside the
// Go runtime's network poller: the pool's pollers (poller_linux.go) wait
// on them, and packets go in and out with one system call each and no
// allocation. An endpoint's descriptors are used under its fdMu read lock
// and closed under its write lock, so that a descriptor number is never
// used after the kernel may have given it to another socket.

// openUDP returns a non-blocking UDP socket bound to ap; an IPv6 socket
// carries IPv6 only, as the standard library's "udp6" does. Its socket
// and bind calls, like closeFD's close, are raw: none of them blocks, and
// a call opens and closes four sockets, so the scheduler's syscall
// bookkeeping (and the monitor thread it wakes) would be paid for each.
func openUDP(ap netip.AddrPort) (int, error) {
	family := syscall.AF_INET
	if ap.Addr().Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("media: socket: %w", err)
	}
	if family == syscall.AF_INET6 {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1); err != nil {
			closeFD(fd)
			return -1, fmt.Errorf("media: IPV6_V6ONLY: %w", err)
		}
	}
	var ra rawAddr
	ra.set(ap)
	if _, _, errno := syscall.RawSyscall(syscall.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&ra.any)), uintptr(ra.len)); errno != 0 {
		closeFD(fd)
		return -1, fmt.Errorf("media: bind %v: %w", ap, errno)
	}
	return fd, nil
}

// rawAddr is a socket address in the kernel's layout, built on the stack.
type rawAddr struct {
	any syscall.RawSockaddrAny
	len uint32
}

func (r *rawAddr) set(ap netip.AddrPort) {
	a := ap.Addr()
	if a.Is4() {
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&r.any))
		sa.Family = syscall.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = a.As4()
		sa.Zero = [8]byte{}
		r.len = syscall.SizeofSockaddrInet4
		return
	}
	sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&r.any))
	sa.Family = syscall.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Flowinfo, sa.Scope_id = 0, 0
	sa.Addr = a.As16()
	r.len = syscall.SizeofSockaddrInet6
}

func (r *rawAddr) addrPort() netip.AddrPort {
	switch r.any.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&r.any))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&r.any))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// sendTo sends one datagram without blocking: a full socket buffer is an
// error (EAGAIN), and the packet is lost as the network would lose it.
func sendTo(fd int, pkt []byte, dst netip.AddrPort) error {
	if len(pkt) == 0 {
		return nil
	}
	var ra rawAddr
	ra.set(dst)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)),
		syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&ra.any)), uintptr(ra.len))
	if errno != 0 {
		return errno
	}
	return nil
}

// recvFrom reads one datagram without blocking; errno is EAGAIN when none
// is waiting, another error (a pending ICMP error, consumed so) when the
// read failed and the next may not.
func recvFrom(fd int, buf []byte) (n int, src netip.AddrPort, errno syscall.Errno) {
	var ra rawAddr
	ra.len = syscall.SizeofSockaddrAny
	r, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&ra.any)), uintptr(unsafe.Pointer(&ra.len)))
	if errno != 0 {
		return 0, netip.AddrPort{}, errno
	}
	return int(r), ra.addrPort(), 0
}

// closeFD closes a relay socket; a UDP socket's close does not block.
func closeFD(fd int) error {
	if fd < 0 {
		return nil
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0); errno != 0 {
		return errno
	}
	return nil
}
