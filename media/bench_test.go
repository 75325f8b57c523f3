package media

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkRelayPacket sends one 172-byte G.711 packet at a time from a phone
// through a bridged pair to the far phone and waits for it: the added latency
// of the relay, both syscalls and the reader goroutine's wake-up included.
// allocs/op counts the whole process, so the relay goroutine's path is in it.
func BenchmarkRelayPacket(b *testing.B) {
	c := newCall(b, testPool(b, 2))
	pkt, buf := g711(1), make([]byte, 2048)
	dst := c.a.Addr()
	c.pb.rtp.SetReadDeadline(time.Now().Add(time.Minute))
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.pa.rtp.WriteToUDPAddrPort(pkt, dst); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.pb.rtp.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayPacketBurst keeps a window of packets in flight, as many
// concurrent calls do: the relay's cost per packet under load rather than
// its latency.
func BenchmarkRelayPacketBurst(b *testing.B) {
	const window = 16
	c := newCall(b, testPool(b, 2))
	pkt, buf := g711(1), make([]byte, 2048)
	dst := c.a.Addr()
	c.pb.rtp.SetReadDeadline(time.Now().Add(time.Minute))
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	inFlight := 0
	for b.Loop() {
		if _, err := c.pa.rtp.WriteToUDPAddrPort(pkt, dst); err != nil {
			b.Fatal(err)
		}
		if inFlight++; inFlight < window {
			continue
		}
		if _, _, err := c.pb.rtp.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
		inFlight--
	}
	for ; inFlight > 0; inFlight-- {
		if _, _, err := c.pb.rtp.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayForward is the relay goroutine's work for one packet without
// the receive: checks, peer lookup and the send syscall.
func BenchmarkRelayForward(b *testing.B) {
	c := newCall(b, testPool(b, 2))
	pkt, src := g711(1), c.pa.addr()
	c.a.relay(pkt, src, false)
	b.ReportAllocs()
	for b.Loop() {
		c.a.relay(pkt, src, false)
	}
}

// BenchmarkCallSetup opens, bridges and closes the two endpoints of a call,
// and reports the memory a live bridged call holds (heap and goroutine
// stacks, measured over 500 calls).
func BenchmarkCallSetup(b *testing.B) {
	const live = 500
	pool := testPool(b, 2*live)
	perCall := callMemory(b, pool, live)
	remote := newPhone(b).addr()
	b.ReportAllocs()
	for b.Loop() {
		x, err := pool.Open()
		if err != nil {
			b.Fatal(err)
		}
		y, err := pool.Open()
		if err != nil {
			b.Fatal(err)
		}
		x.SetRemote(remote, false)
		y.SetRemote(remote, false)
		Bridge(x, y)
		x.Close()
		y.Close()
	}
	// After the loop: b.Loop's timer reset discards metrics reported before.
	b.ReportMetric(perCall, "B/call")
}

func callMemory(b *testing.B, pool *PortPool, calls int) float64 {
	remote := newPhone(b).addr()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	eps := make([]*Endpoint, 0, 2*calls)
	for range calls {
		x, err := pool.Open()
		if err != nil {
			b.Fatal(err)
		}
		y, err := pool.Open()
		if err != nil {
			b.Fatal(err)
		}
		x.SetRemote(remote, false)
		y.SetRemote(remote, false)
		Bridge(x, y)
		eps = append(eps, x, y)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, e := range eps {
		e.Close()
	}
	used := int64(after.HeapAlloc+after.StackInuse) - int64(before.HeapAlloc+before.StackInuse)
	return float64(used) / float64(calls)
}

func BenchmarkSDPRewrite(b *testing.B) {
	w := NewSDPWriter(switchIP)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Rewrite(linphoneOffer, 30000, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseOffer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseOffer(linphoneOffer); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelaySRTP is BenchmarkRelayForward with SRTP terminated on one
// or both legs: checks, decryption (authentication and replay check
// included) and/or encryption with the other leg's key, and the send
// syscall. RTP→RTP is the plain path measured the same way, for
// comparison. The far end's SRTP packets are made ahead in batches with
// the timer stopped.
func BenchmarkRelaySRTP(b *testing.B) {
	for _, bc := range []struct {
		name         string
		inSRTP, outS bool
	}{
		{"RTP→RTP", false, false},
		{"RTP→SRTP", false, true},
		{"SRTP→RTP", true, false},
		{"SRTP→SRTP", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pool := testPool(b, 2)
			in, out := openEndpoint(b, pool), openEndpoint(b, pool)
			pin, pout := newPhone(b), newPhone(b)
			in.SetRemote(pin.addr(), false)
			out.SetRemote(pout.addr(), false)
			far, keysIn := newSRTPPeer(b)
			_, keysOut := newSRTPPeer(b)
			if bc.inSRTP {
				setSRTP(b, in, keysIn)
			}
			if bc.outS {
				setSRTP(b, out, keysOut)
			}
			Bridge(in, out)
			const batch = 4096
			var stream [][]byte
			seq := uint16(1)
			refill := func() {
				if !bc.inSRTP {
					stream = [][]byte{g711(1)}
					return
				}
				stream = srtpStream(b, far, seq, batch)
				seq += batch
			}
			refill()
			buf := make([]byte, bufSize+srtpRoom)
			src := pin.addr()
			next := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if next == len(stream) {
					if !bc.inSRTP {
						next = 0
					} else {
						b.StopTimer()
						refill()
						next = 0
						b.StartTimer()
					}
				}
				n := copy(buf, stream[next])
				next++
				in.relay(buf[:n], src, false)
			}
			b.StopTimer()
			if d := in.Stats().Dropped; d != 0 {
				b.Fatalf("%d packets dropped", d)
			}
		})
	}
}
