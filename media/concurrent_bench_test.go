//go:build unix

package media

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkConcurrentCalls relays real G.711 calls at once, each phone
// sending 20 ms packets, and measures how long a packet takes from the
// caller's socket through the relay to the callee's socket (SPEC §9: 2,000
// calls with under 1 ms added at p99). One op is one 20 ms tick of every
// call; the latency is reported over all packets, with the CPU the whole
// process (relay and test phones) used.
func BenchmarkConcurrentCalls(b *testing.B) {
	for _, calls := range []int{500, 2000} {
		b.Run("calls="+strconv.Itoa(calls), func(b *testing.B) { benchConcurrent(b, calls) })
	}
}

func benchConcurrent(b *testing.B, calls int) {
	pool, err := NewPortPool(loopback, 10000, 10000+4*calls+63)
	if err != nil {
		b.Fatal(err)
	}
	type leg struct {
		caller, callee *net.UDPConn
		ea             *Endpoint
	}
	legs := make([]leg, calls)
	var received sync.WaitGroup
	lat := make([][]time.Duration, calls)
	for i := range legs {
		ea, err := pool.Open()
		if err != nil {
			b.Fatal(err)
		}
		eb, err := pool.Open()
		if err != nil {
			b.Fatal(err)
		}
		caller, _ := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		callee, _ := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		caller.SetReadBuffer(1 << 16)
		callee.SetReadBuffer(1 << 16)
		ea.SetRemote(caller.LocalAddr().(*net.UDPAddr).AddrPort(), false)
		eb.SetRemote(callee.LocalAddr().(*net.UDPAddr).AddrPort(), false)
		Bridge(ea, eb)
		legs[i] = leg{caller: caller, callee: callee, ea: ea}
		defer ea.Close()
		defer eb.Close()
		defer caller.Close()
		received.Add(1)
		go func() {
			defer received.Done()
			buf := make([]byte, 2048)
			for {
				n, err := callee.Read(buf)
				if err != nil {
					return
				}
				if n >= 20 {
					sent := int64(binary.BigEndian.Uint64(buf[12:20]))
					lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-sent))
				}
			}
		}()
	}
	pkt := make([]byte, 172)
	pkt[0], pkt[1] = 0x80, 0 // RTP v2, PCMU
	// Latch every call (the first packet locks the relay onto the caller).
	for _, l := range legs {
		l.caller.WriteToUDPAddrPort(pkt, l.ea.Addr())
	}
	time.Sleep(100 * time.Millisecond)
	for i := range lat {
		lat[i] = lat[i][:0]
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	next := time.Now()
	// Phones are not synchronised: spread each tick's packets over its 20
	// ms in 1 ms slots, as independent calls would be.
	const slots = 20
	for n := 0; n < b.N; n++ {
		for slot := 0; slot < slots; slot++ {
			for i := slot; i < len(legs); i += slots {
				l := legs[i]
				binary.BigEndian.PutUint16(pkt[2:4], uint16(n))
				binary.BigEndian.PutUint32(pkt[8:12], uint32(i))
				binary.BigEndian.PutUint64(pkt[12:20], uint64(time.Now().UnixNano()))
				l.caller.WriteToUDPAddrPort(pkt, l.ea.Addr())
			}
			next = next.Add(20 * time.Millisecond / slots)
			time.Sleep(time.Until(next))
		}
	}
	b.StopTimer()
	time.Sleep(50 * time.Millisecond) // the last tick's packets land
	cpu := cpuTime() - cpu0
	for _, l := range legs {
		l.callee.Close()
	}
	received.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		b.Fatal("no packet went through")
	}
	slices.Sort(all)
	q := func(f float64) float64 {
		return float64(all[min(len(all)-1, int(f*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(all))/float64(b.N*calls), "delivered")
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*0.020), "cores")
}
