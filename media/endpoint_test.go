package media

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// call is two phones talking through a bridged pair of endpoints.
type call struct {
	a, b   *Endpoint
	pa, pb *phone
}

func newCall(t testing.TB, p *PortPool) *call {
	t.Helper()
	c := &call{a: openEndpoint(t, p), b: openEndpoint(t, p), pa: newPhone(t), pb: newPhone(t)}
	c.a.SetRemote(c.pa.addr(), false)
	c.b.SetRemote(c.pb.addr(), false)
	Bridge(c.a, c.b)
	return c
}

func TestRelayBothWays(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	const n = 50
	for _, dir := range []struct {
		name     string
		from, to *phone
		in, out  *Endpoint
	}{
		{"a to b", c.pa, c.pb, c.a, c.b},
		{"b to a", c.pb, c.pa, c.b, c.a},
	} {
		t.Run(dir.name, func(t *testing.T) {
			for i := range n {
				pkt := g711(uint16(i))
				send(t, dir.from.rtp, dir.in.Addr(), pkt)
				got, src := recv(t, dir.to.rtp)
				if !bytes.Equal(got, pkt) {
					t.Fatalf("packet %d changed in transit", i)
				}
				// Symmetric RTP: the far end hears the switch from the
				// address the switch gave it in SDP.
				if src != dir.out.Addr() {
					t.Fatalf("packet from %v, want %v", src, dir.out.Addr())
				}
			}
			waitFor(t, "counters", func() bool {
				return dir.in.Stats().PacketsIn == n && dir.out.Stats().PacketsOut == n
			})
			in, out := dir.in.Stats(), dir.out.Stats()
			if in.BytesIn != n*172 || out.BytesOut != n*172 || in.Dropped != 0 {
				t.Errorf("in %+v, out %+v", in, out)
			}
			if time.Since(in.LastPacket) > time.Minute {
				t.Errorf("LastPacket = %v", in.LastPacket)
			}
		})
	}
}

func TestManyCallsConcurrently(t *testing.T) {
	const calls, packets = 20, 30
	p := testPool(t, 2*calls)
	before := RelayedPackets()
	var wg sync.WaitGroup
	for range calls {
		c := newCall(t, p)
		wg.Go(func() {
			buf := make([]byte, 2048)
			c.pb.rtp.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i := range packets {
				if _, err := c.pa.rtp.WriteToUDPAddrPort(g711(uint16(i)), c.a.Addr()); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := c.pb.rtp.ReadFromUDPAddrPort(buf); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "RelayedPackets to count every call's packets", func() bool {
		return RelayedPackets()-before >= calls*packets
	})
}

func TestRTCP(t *testing.T) {
	tests := []struct {
		name       string
		aMux, bMux bool
	}{
		{"separate ports", false, false},
		{"rtcp-mux both", true, true},
		{"mux caller, separate callee", true, false},
		{"separate caller, mux callee", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := testPool(t, 2)
			a, b := openEndpoint(t, pool), openEndpoint(t, pool)
			pa, pb := newPhonePair(t), newPhonePair(t)
			a.SetRemote(pa.addr(), tt.aMux)
			b.SetRemote(pb.addr(), tt.bMux)
			Bridge(a, b)

			// Where a phone sends its RTCP, and where it hears the switch's.
			rtcpSock := func(p *phone, mux bool) *net.UDPConn {
				if mux {
					return p.rtp
				}
				return p.rtcp
			}
			switchRTCP := func(e *Endpoint, mux bool) netip.AddrPort {
				if mux {
					return e.Addr()
				}
				return rtcpAddr(e.Addr())
			}

			rr := receiverReport(1)
			send(t, rtcpSock(pa, tt.aMux), switchRTCP(a, tt.aMux), rr)
			got, src := recv(t, rtcpSock(pb, tt.bMux))
			if !bytes.Equal(got, rr) || src != switchRTCP(b, tt.bMux) {
				t.Errorf("a→b RTCP: %x from %v, want %x from %v", got, src, rr, switchRTCP(b, tt.bMux))
			}

			rr = receiverReport(2)
			send(t, rtcpSock(pb, tt.bMux), switchRTCP(b, tt.bMux), rr)
			got, src = recv(t, rtcpSock(pa, tt.aMux))
			if !bytes.Equal(got, rr) || src != switchRTCP(a, tt.aMux) {
				t.Errorf("b→a RTCP: %x from %v, want %x from %v", got, src, rr, switchRTCP(a, tt.aMux))
			}

			// RTP still flows on the RTP ports alongside.
			pkt := g711(7)
			send(t, pa.rtp, a.Addr(), pkt)
			if got, _ := recv(t, pb.rtp); !bytes.Equal(got, pkt) {
				t.Error("RTP changed in transit")
			}
		})
	}
}

func TestLatching(t *testing.T) {
	pool := testPool(t, 4)
	a, b := openEndpoint(t, pool), openEndpoint(t, pool)
	pb := newPhone(t)
	b.SetRemote(pb.addr(), false)
	Bridge(a, b)

	t.Run("NAT rewrote the port", func(t *testing.T) {
		signaled := newPhone(t) // the address in SDP; the phone never sends from it
		natted := newPhone(t)
		a.SetRemote(signaled.addr(), false)

		send(t, natted.rtp, a.Addr(), g711(1))
		recv(t, pb.rtp)
		if s := a.Stats(); !s.Latched || s.Remote != natted.addr() {
			t.Fatalf("after first packet: latched %v to %v, want %v", s.Latched, s.Remote, natted.addr())
		}
		// Replies follow the latch, not the SDP.
		send(t, pb.rtp, b.Addr(), g711(2))
		recv(t, natted.rtp)
		expectNone(t, signaled.rtp)

		t.Run("injection after latch is dropped", func(t *testing.T) {
			intruder := newPhone(t) // same IP, another port
			dropped := a.Stats().Dropped
			send(t, intruder.rtp, a.Addr(), g711(3))
			expectNone(t, pb.rtp)
			waitFor(t, "drop count", func() bool { return a.Stats().Dropped == dropped+1 })
			if a.Stats().Remote != natted.addr() {
				t.Error("intruder moved the latch")
			}
			// Even the signaled address is a stranger once latched elsewhere.
			send(t, signaled.rtp, a.Addr(), g711(4))
			expectNone(t, pb.rtp)
			// The latched source still gets through.
			send(t, natted.rtp, a.Addr(), g711(5))
			recv(t, pb.rtp)
		})

		t.Run("SetRemote resets the latch", func(t *testing.T) {
			moved := newPhone(t)
			a.SetRemote(signaled.addr(), false)
			if a.Stats().Latched {
				t.Fatal("still latched after SetRemote")
			}
			send(t, moved.rtp, a.Addr(), g711(6))
			recv(t, pb.rtp)
			if a.Stats().Remote != moved.addr() {
				t.Errorf("latched to %v, want %v", a.Stats().Remote, moved.addr())
			}
		})
	})

	t.Run("signaled address locks", func(t *testing.T) {
		pa, other := newPhone(t), newPhone(t)
		a.SetRemote(pa.addr(), false)
		send(t, pa.rtp, a.Addr(), g711(1))
		recv(t, pb.rtp)
		send(t, other.rtp, a.Addr(), g711(2))
		expectNone(t, pb.rtp)
		if s := a.Stats(); s.Remote != pa.addr() || !s.Latched {
			t.Errorf("remote %v latched %v, want %v locked", s.Remote, s.Latched, pa.addr())
		}
	})

	t.Run("old-style hold address latches", func(t *testing.T) {
		pa := newPhone(t)
		a.SetRemote(netip.AddrPortFrom(netip.IPv4Unspecified(), 4000), false)
		send(t, pb.rtp, b.Addr(), g711(1)) // nowhere to send yet
		expectNone(t, pa.rtp)
		send(t, pa.rtp, a.Addr(), g711(2))
		recv(t, pb.rtp)
		send(t, pb.rtp, b.Addr(), g711(3))
		recv(t, pa.rtp)
	})

	t.Run("another IP does not latch", func(t *testing.T) {
		// 127.0.0.2 is public-looking enough: neither private nor unspecified.
		pa := listen(t, netip.MustParseAddrPort("127.0.0.2:0"))
		stranger := newPhone(t)
		a.SetRemote(addrOf(pa), false)
		send(t, stranger.rtp, a.Addr(), g711(1))
		expectNone(t, pb.rtp)
		if a.Stats().Latched {
			t.Fatal("latched onto a stranger")
		}
		send(t, pa, a.Addr(), g711(2))
		recv(t, pb.rtp)
	})

	t.Run("nothing accepted before SetRemote", func(t *testing.T) {
		c := openEndpoint(t, pool)
		d := openEndpoint(t, pool)
		pd := newPhone(t)
		d.SetRemote(pd.addr(), false)
		Bridge(c, d)
		send(t, newPhone(t).rtp, c.Addr(), g711(1))
		expectNone(t, pd.rtp)
		if c.Stats().Dropped != 1 || c.Stats().PacketsIn != 0 {
			t.Errorf("stats %+v", c.Stats())
		}
	})
}

func TestCanLatch(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name          string
		signaled, src netip.AddrPort
		want          bool
	}{
		{"same IP other port", ap("203.0.113.5:4000"), ap("203.0.113.5:61000"), true},
		{"unspecified IPv4", ap("0.0.0.0:4000"), ap("198.51.100.7:4000"), true},
		{"unspecified IPv6", ap("[::]:4000"), ap("[2001:db8::7]:4000"), true},
		{"RFC 1918 behind NAT", ap("192.168.1.20:7078"), ap("203.0.113.5:7078"), true},
		{"10/8 behind NAT", ap("10.1.2.3:7078"), ap("198.51.100.9:30000"), true},
		{"CGNAT behind NAT", ap("100.64.1.2:7078"), ap("203.0.113.5:7078"), true},
		{"ULA behind NAT", ap("[fd00::20]:7078"), ap("[2001:db8::5]:7078"), true},
		{"link-local behind NAT", ap("169.254.3.4:7078"), ap("203.0.113.5:7078"), true},
		{"public to other public", ap("203.0.113.5:4000"), ap("198.51.100.7:4000"), false},
		{"private to other private", ap("192.168.1.20:7078"), ap("192.168.1.66:7078"), false},
		{"private to loopback", ap("192.168.1.20:7078"), ap("127.0.0.1:7078"), false},
		{"public to private", ap("203.0.113.5:4000"), ap("192.168.1.20:4000"), false},
		{"nothing signaled", netip.AddrPort{}, ap("203.0.113.5:4000"), false},
		{"disabled stream", ap("203.0.113.5:0"), ap("203.0.113.5:4000"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canLatch(tt.signaled, tt.src); got != tt.want {
				t.Errorf("canLatch(%v, %v) = %v, want %v", tt.signaled, tt.src, got, tt.want)
			}
		})
	}
}

func TestRelayValidation(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	src := c.pa.addr()
	csrcShort := g711(1)[:20]
	csrcShort[0] |= 3 // claims three CSRCs, has room for two
	tests := []struct {
		name       string
		pkt        []byte
		rtcpSocket bool
		relayed    bool
	}{
		{"G.711 RTP", g711(1), false, true},
		{"header only", g711(1)[:12], false, true},
		{"short RTP", g711(1)[:11], false, false},
		{"empty", nil, false, false},
		{"RTP version 1", append([]byte{0x40}, g711(1)[1:]...), false, false},
		{"RTP version 0 (STUN)", append([]byte{0x00, 0x01}, g711(1)[2:]...), false, false},
		{"CSRC list cut short", csrcShort, false, false},
		{"muxed RTCP on RTP socket", receiverReport(1), false, true},
		{"RTCP", receiverReport(1), true, true},
		{"short RTCP", receiverReport(1)[:4], true, false},
		{"RTCP version 1", append([]byte{0x40}, receiverReport(1)[1:]...), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, out := c.a.Stats(), c.b.Stats()
			c.a.relay(tt.pkt, src, tt.rtcpSocket)
			in2, out2 := c.a.Stats(), c.b.Stats()
			if relayed := out2.PacketsOut == out.PacketsOut+1; relayed != tt.relayed {
				t.Errorf("relayed = %v, want %v", relayed, tt.relayed)
			}
			if dropped := in2.Dropped == in.Dropped+1; dropped == tt.relayed {
				t.Errorf("dropped = %v, want %v", dropped, !tt.relayed)
			}
		})
	}
	// Drain what was relayed so the sockets close clean.
	c.pb.rtp.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		if _, _, err := c.pb.rtp.ReadFromUDPAddrPort(make([]byte, 2048)); err != nil {
			break
		}
	}
}

func TestTruncatedDatagramDropped(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	big := append(g711(1), make([]byte, bufSize)...)
	send(t, c.pa.rtp, c.a.Addr(), big)
	expectNone(t, c.pb.rtp)
	waitFor(t, "drop", func() bool { return c.a.Stats().Dropped == 1 })
}

func TestRebridge(t *testing.T) {
	// A talks to B; B is parked (A's endpoint is bridged to C, as on
	// retrieve by another phone): B's packets must stop reaching A.
	pool := testPool(t, 3)
	c := newCall(t, pool)
	e := openEndpoint(t, pool)
	pc := newPhone(t)
	e.SetRemote(pc.addr(), false)

	Bridge(c.a, e)
	send(t, c.pa.rtp, c.a.Addr(), g711(1))
	recv(t, pc.rtp)
	expectNone(t, c.pb.rtp)

	send(t, pc.rtp, e.Addr(), g711(2))
	recv(t, c.pa.rtp)

	dropped := c.b.Stats().Dropped
	send(t, c.pb.rtp, c.b.Addr(), g711(3))
	expectNone(t, c.pa.rtp)
	waitFor(t, "drop on the detached endpoint", func() bool { return c.b.Stats().Dropped == dropped+1 })

	// Back again, and bridging a bridged pair again changes nothing.
	Bridge(c.a, c.b)
	Bridge(c.b, c.a)
	send(t, c.pb.rtp, c.b.Addr(), g711(4))
	recv(t, c.pa.rtp)
	send(t, c.pa.rtp, c.a.Addr(), g711(4))
	recv(t, c.pb.rtp)
	send(t, pc.rtp, e.Addr(), g711(5))
	expectNone(t, c.pa.rtp)

	c.a.Unbridge()
	send(t, c.pa.rtp, c.a.Addr(), g711(6))
	send(t, c.pb.rtp, c.b.Addr(), g711(7))
	expectNone(t, c.pb.rtp)
	expectNone(t, c.pa.rtp)
}

// TestRebridgeUnderTraffic moves a leg between two peers while its phone
// keeps sending, as park and retrieve do mid-stream; run with -race.
func TestRebridgeUnderTraffic(t *testing.T) {
	pool := testPool(t, 3)
	c := newCall(t, pool)
	e := openEndpoint(t, pool)
	e.SetRemote(newPhone(t).addr(), false)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		pkt := g711(1)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.pa.rtp.WriteToUDPAddrPort(pkt, c.a.Addr())
			time.Sleep(50 * time.Microsecond)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 300 || c.a.Stats().PacketsIn < 100; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d packets arrived", c.a.Stats().PacketsIn)
		}
		time.Sleep(20 * time.Microsecond)
		switch i % 3 {
		case 0:
			Bridge(c.a, e)
		case 1:
			Bridge(c.a, c.b)
		default:
			c.a.Unbridge()
		}
		c.a.SetRemote(c.pa.addr(), false)
	}
	close(stop)
	wg.Wait()
	for _, x := range []*Endpoint{c.a, c.b, e} {
		if p := x.peer.Load(); p != nil && p.peer.Load() != x {
			t.Errorf("one-sided bridge left behind")
		}
	}
}

func TestWriteRTP(t *testing.T) {
	pool := testPool(t, 1)
	e := openEndpoint(t, pool)
	if err := e.WriteRTP(g711(1)); err == nil {
		t.Error("WriteRTP without a remote succeeded")
	}
	pa := newPhone(t)
	e.SetRemote(pa.addr(), false)
	if err := e.WriteRTP(g711(2)); err != nil {
		t.Fatal(err)
	}
	got, src := recv(t, pa.rtp)
	if !bytes.Equal(got, g711(2)) || src != e.Addr() {
		t.Errorf("got %d bytes from %v", len(got), src)
	}
	if s := e.Stats(); s.PacketsOut != 1 || s.BytesOut != 172 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pool := testPool(t, 2)
	before := OpenEndpoints()
	a, err := pool.Open()
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Open()
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := newPhone(t), newPhone(t)
	a.SetRemote(pa.addr(), false)
	b.SetRemote(pb.addr(), false)
	Bridge(a, b)
	send(t, pa.rtp, a.Addr(), g711(1))
	recv(t, pb.rtp)
	if OpenEndpoints() != before+2 {
		t.Fatalf("OpenEndpoints = %d, want %d", OpenEndpoints(), before+2)
	}

	// Concurrent and repeated Close all return once the work is done.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := a.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if pool.InUse() != 1 {
		t.Errorf("InUse = %d after closing one of two", pool.InUse())
	}
	// The survivor no longer relays into the closed endpoint.
	send(t, pb.rtp, b.Addr(), g711(2))
	expectNone(t, pa.rtp)
	// Bridging a closed endpoint is a no-op.
	Bridge(a, b)
	if b.peer.Load() != nil {
		t.Error("bridged to a closed endpoint")
	}
	b.Close()

	if pool.InUse() != 0 || OpenEndpoints() != before {
		t.Errorf("InUse = %d, OpenEndpoints = %d after Close", pool.InUse(), OpenEndpoints())
	}
	// The ports are free for anyone again.
	for _, e := range []*Endpoint{a, b} {
		listen(t, e.Addr())
		listen(t, rtcpAddr(e.Addr()))
	}
}

// TestRelayAllocs keeps the per-packet path allocation-free: the function the
// reader goroutines run for every packet, with a real socket write.
func TestRelayAllocs(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	pkt, rr, src := g711(1), receiverReport(1), c.pa.addr()
	c.a.relay(pkt, src, false) // latch first: that allocates, once per SetRemote
	if allocs := testing.AllocsPerRun(1000, func() {
		c.a.relay(pkt, src, false)
		c.a.relay(rr, src, false)
	}); allocs != 0 {
		t.Errorf("relay allocates %v times per packet pair", allocs)
	}
	if c.a.Stats().Dropped != 0 {
		t.Errorf("dropped %d", c.a.Stats().Dropped)
	}
}

// TestRelayPathAllocs covers what AllocsPerRun on relay does not: the
// poller's wait and receive. Allocation counts are process-wide, so a few stray
// runtime allocations are tolerated, but not one per packet.
func TestRelayPathAllocs(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	pkt, buf := g711(1), make([]byte, 2048)
	dst := c.a.Addr()
	c.pb.rtp.SetReadDeadline(time.Now().Add(10 * time.Second))
	roundTrip := func() {
		if _, err := c.pa.rtp.WriteToUDPAddrPort(pkt, dst); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.pb.rtp.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip() // latch
	const n = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.05 {
		t.Errorf("%.3f allocations per relayed packet", per)
	}
}

// TestSilentFor: the silence clock runs from the last packet, and starts
// over when the remote is set again or the endpoint is bridged.
func TestSilentFor(t *testing.T) {
	c := newCall(t, testPool(t, 2))
	later := time.Now().Add(time.Hour)
	if d := c.a.SilentFor(later); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Fatalf("SilentFor an hour after opening = %v", d)
	}
	send(t, c.pa.rtp, c.a.Addr(), g711(1))
	recv(t, c.pb.rtp)
	if d := c.a.SilentFor(time.Now()); d > time.Second {
		t.Errorf("SilentFor just after a packet = %v", d)
	}
	if d := c.b.SilentFor(later); d < time.Hour-time.Second {
		t.Errorf("the silent side's SilentFor = %v", d)
	}
	mark := time.Now()
	time.Sleep(5 * time.Millisecond)
	c.b.SetRemote(c.pb.addr(), false)
	if d := c.b.SilentFor(mark); d > 0 {
		t.Errorf("SetRemote did not start the clock over: %v", d)
	}
	mark = time.Now()
	time.Sleep(5 * time.Millisecond)
	Bridge(c.a, c.b)
	if da, db := c.a.SilentFor(mark), c.b.SilentFor(mark); da > 0 || db > 0 {
		t.Errorf("Bridge did not start the clocks over: %v %v", da, db)
	}
}
