package media

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves an endpoint open or a goroutine
// running: every path of the package must give back what it took.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if n := OpenEndpoints(); n != 0 {
			os.Stderr.WriteString("media: endpoints left open after tests\n")
			code = 1
		}
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("media: goroutines leaked: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

var loopback = netip.MustParseAddr("127.0.0.1")

// nextRange spreads the pools of successive tests over the port space so
// that a test never binds the ports an earlier one just released.
var nextRange = 31000

func testPool(t testing.TB, pairs int) *PortPool {
	t.Helper()
	lo := nextRange
	nextRange += 2*pairs + 16
	if nextRange > 60000 {
		nextRange = 31000
	}
	p, err := NewPortPool(loopback, lo, lo+2*pairs-1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openEndpoint(t testing.TB, p *PortPool) *Endpoint {
	t.Helper()
	e, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// phone is a far end: a UDP socket on loopback, plus its RTCP socket on the
// next port when the test needs one.
type phone struct {
	rtp, rtcp *net.UDPConn
}

func listen(t testing.TB, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newPhone(t testing.TB) *phone {
	return &phone{rtp: listen(t, netip.AddrPortFrom(loopback, 0))}
}

// newPhonePair binds an RTP/RTCP pair the way a phone does, on adjacent
// ports of a test pool's range that no endpoint of that pool takes.
func newPhonePair(t testing.TB) *phone {
	t.Helper()
	p := testPool(t, 8)
	for i := range p.Capacity() {
		at := func(port int) *net.UDPAddr {
			return net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port)))
		}
		rtp, err := net.ListenUDP("udp4", at(p.base+2*i))
		if err != nil {
			continue
		}
		rtcp, err := net.ListenUDP("udp4", at(p.base+2*i+1))
		if err != nil {
			rtp.Close()
			continue
		}
		t.Cleanup(func() { rtp.Close(); rtcp.Close() })
		return &phone{rtp: rtp, rtcp: rtcp}
	}
	t.Fatal("no free port pair for a test phone")
	return nil
}

func (p *phone) addr() netip.AddrPort { return addrOf(p.rtp) }

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func rtcpAddr(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr(), a.Port()+1)
}

// g711 is a 172-byte PCMU packet: 12-byte header and 20 ms of audio.
func g711(seq uint16) []byte {
	pkt := rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			PayloadType:    0,
			SequenceNumber: seq,
			Timestamp:      uint32(seq) * 160,
			SSRC:           0x5eed,
		},
		Payload: make([]byte, 160),
	}
	for i := range pkt.Payload {
		pkt.Payload[i] = 0xff
	}
	b, err := pkt.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// receiverReport is a minimal RTCP RR (RFC 3550 §6.4.2) without report blocks.
func receiverReport(ssrc uint32) []byte {
	b := []byte{0x80, 201, 0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], ssrc)
	return b
}

func send(t testing.TB, c *net.UDPConn, to netip.AddrPort, pkt []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(pkt, to); err != nil {
		t.Fatal(err)
	}
}

// recv waits for one packet on c and returns it with its source.
func recv(t testing.TB, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("waiting for a packet on %v: %v", addrOf(c), err)
	}
	return buf[:n], from
}

// expectNone checks that nothing arrives on c for a while.
func expectNone(t testing.TB, c *net.UDPConn) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	var ne net.Error
	if err == nil {
		t.Fatalf("unexpected %d-byte packet from %v on %v", n, from, addrOf(c))
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatal(err)
	}
}

// waitFor polls cond: counters move in the relay goroutines, after the packet
// has already been seen at the far end.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
