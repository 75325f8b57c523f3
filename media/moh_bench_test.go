//go:build unix

package media

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMusicFanout is music on hold for many parked calls: one op is
// one tick, the current frame sent to every listener from its own endpoint,
// all to one sink socket on loopback, spread over goroutines as Run does.
// Ticks run back to back instead of every 20 ms, so the figures are the
// cost of the work, not of waiting:
//
//   - ns/op: wall time of a tick, which must stay well under 20 ms.
//   - cpu-ns/tick, cpu-ns/packet: user+system CPU of the whole process
//     (getrusage), the kernel's loopback delivery included.
//   - cores: that CPU at the real rate of 50 ticks a second, the share of a
//     core the parked calls take.
//   - B/listener: heap held by the music per listener; B/parked adds the
//     listener's endpoint (sockets, reader goroutine stacks).
//   - allocs/op: the whole process; 0 means no allocation per packet.
//
// The endpoints take ports 10000-20999, below the usual ephemeral range.
func BenchmarkMusicFanout(b *testing.B) {
	for _, n := range []int{500, 2000, 5000} {
		b.Run(fmt.Sprintf("listeners=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	pool, err := NewPortPool(loopback, 10000, 20999)
	if err != nil {
		b.Fatal(err)
	}
	sink := addrOf(listen(b, netip.AddrPortFrom(loopback, 0)))
	m := testMusic(b)

	var before, mid, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	eps := make([]*Endpoint, 0, n)
	b.Cleanup(func() {
		for _, e := range eps {
			e.Close()
		}
	})
	for range n {
		e, err := pool.Open()
		if err != nil {
			b.Skipf("%d of %d port pairs: %v", len(eps), n, err)
		}
		e.SetRemote(sink, false)
		eps = append(eps, e)
	}
	runtime.GC()
	runtime.ReadMemStats(&mid)
	for i, e := range eps {
		f := PCMU
		if i%2 == 1 {
			f = PCMA
		}
		if _, err := m.Attach(e, f); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perListener := float64(after.HeapAlloc-mid.HeapAlloc) / float64(n)
	perParked := float64(int64(after.HeapAlloc+after.StackInuse)-int64(before.HeapAlloc+before.StackInuse)) / float64(n)

	defer m.startFanout(runtime.GOMAXPROCS(0)-1, minShard)()
	m.tick(0) // first packets: marker, lazily set state
	tick := int64(1)
	cpu0 := cpuTime()
	b.ReportAllocs()
	for b.Loop() {
		m.tick(tick)
		tick++
	}
	cpu := float64(cpuTime() - cpu0)
	ticks, packets := float64(b.N), float64(b.N*n)
	b.ReportMetric(cpu/ticks, "cpu-ns/tick")
	b.ReportMetric(cpu/packets, "cpu-ns/packet")
	b.ReportMetric(cpu/ticks*float64(time.Second/frameDuration)/1e9, "cores")
	b.ReportMetric(perListener, "B/listener")
	b.ReportMetric(perParked, "B/parked")
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
