//go:build !linux

package sip

import "net"

// newRawUDPConn is the listener itself where raw sends are not built.
func newRawUDPConn(uc *net.UDPConn) net.PacketConn { return uc }
