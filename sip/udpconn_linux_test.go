package sip

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestRawSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr *net.UDPAddr
		v6   bool
		ok   bool
		want string
	}{
		{"v4 on v4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060}, false, true, "127.0.0.1:5060"},
		{"v4 on v6 is mapped", &net.UDPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5070}, true, true, "10.1.2.3:5070"},
		{"v6 on v6", &net.UDPAddr{IP: net.ParseIP("2001:db8::7"), Port: 5080}, true, true, "[2001:db8::7]:5080"},
		{"v6 on v4", &net.UDPAddr{IP: net.ParseIP("2001:db8::7"), Port: 5080}, false, false, ""},
		{"zone goes the standard way", &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 5060, Zone: "eth0"}, true, false, ""},
		{"no IP", &net.UDPAddr{Port: 5060}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sa rawSockaddr
			if ok := sa.set(tc.addr, tc.v6); ok != tc.ok {
				t.Fatalf("set: %v, want %v", ok, tc.ok)
			}
			if !tc.ok {
				return
			}
			if got := sa.udpAddr().String(); got != tc.want {
				t.Fatalf("round trip: %s, want %s", got, tc.want)
			}
		})
	}
}

// TestRawUDPConn: datagrams both ways with a plain socket, on IPv4 and
// IPv6, the peer's address as the standard library gives it, and a read
// in progress ended by Close with net.ErrClosed, which is how sipgo's
// reader knows to stop.
func TestRawUDPConn(t *testing.T) {
	for _, network := range []struct{ name, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(network.name, func(t *testing.T) {
			uc, err := net.ListenUDP(network.name, mustResolve(t, network.name, network.addr))
			if err != nil {
				t.Skip(err)
			}
			pc := newRawUDPConn(uc)
			c, ok := pc.(*rawUDPConn)
			if !ok {
				t.Fatal("not wrapped")
			}
			peer, err := net.ListenUDP(network.name, mustResolve(t, network.name, network.addr))
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()

			if _, err := c.WriteTo([]byte("OPTIONS"), peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, from, err := peer.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "OPTIONS" || from.String() != c.LocalAddr().String() {
				t.Fatalf("peer got %q from %v (%v), want OPTIONS from %v", buf[:n], from, err, c.LocalAddr())
			}

			read := make(chan string, 1)
			go func() {
				n, from, err := c.ReadFrom(buf)
				read <- string(buf[:n]) + "|" + addrString(from) + "|" + errString(err)
			}()
			if _, err := peer.WriteTo([]byte("200 OK"), c.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if got, want := <-read, "200 OK|"+peer.LocalAddr().String()+"|"; got != want {
				t.Fatalf("read %q, want %q", got, want)
			}

			go func() {
				_, _, err := c.ReadFrom(buf)
				read <- errString(err)
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("read after close: %v, want net.ErrClosed", err)
				}
			}()
			time.Sleep(50 * time.Millisecond) // let the read wait in the poller
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-read:
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not end the read")
			}
			if _, err := c.WriteTo([]byte("late"), peer.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write after close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func mustResolve(t *testing.T, network, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRawUDPConnAllocs: a datagram each way costs the listener no
// allocation beyond the peer's address that ReadFrom returns, as the
// standard library's does.
func TestRawUDPConnAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := newRawUDPConn(uc)
	defer c.Close()
	to := c.LocalAddr() // to itself: every send is then read back
	pkt, buf := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n"), make([]byte, 256)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := c.WriteTo(pkt, to); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("WriteTo: %.1f allocations, want 0", n)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := c.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("ReadFrom: %.1f allocations, want the peer's address only (2)", n)
	}
}
