package park

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// nopRinger never rings: benchmarks end every orbit before its deadline.
type nopRinger struct{}

func (nopRinger) Ring(ctx context.Context, o *Orbit, target string, d time.Duration, claim func() bool) RingResult {
	return NoAnswer
}
func (nopRinger) Abandon(*Orbit) {}

func closeLot(b *testing.B, l *Lot) {
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkParkRetrieve is one park and one retrieve on the real clock (a
// runtime timer armed and stopped), in a table holding 100 other orbits.
func BenchmarkParkRetrieve(b *testing.B) {
	l := NewLot(RealClock(), Config{}, nopRinger{}, nil)
	defer closeLot(b, l)
	p := pol("SalesPolicy", 500, 1500)
	for i := range 100 {
		if _, err := l.Park(context.Background(), p, fakeCall("resident-"+strconv.Itoa(i)), alice, ken); err != nil {
			b.Fatal(err)
		}
	}
	var c Call = fakeCall("bench")
	b.ReportAllocs()
	for b.Loop() {
		o, err := l.Park(context.Background(), p, c, alice, ken)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Retrieve(p, o.Code(), Party{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParkRetrieveParallel is the same from every CPU at once, each
// goroutine in its own policy, all behind the one lock of the lot.
func BenchmarkParkRetrieveParallel(b *testing.B) {
	l := NewLot(RealClock(), Config{}, nopRinger{}, nil)
	defer closeLot(b, l)
	var n atomicCounter
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := n.next()
		p := pol("Policy"+strconv.Itoa(i), 10, 9999)
		var c Call = fakeCall("bench-" + strconv.Itoa(i)) // converted once, as the SIP layer holds it
		for pb.Next() {
			o, err := l.Park(context.Background(), p, c, alice, ken)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := l.Retrieve(p, o.Code(), Party{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkParkedOrbitMemory reports the heap a parked orbit holds, timer
// included, over 9,990 orbits (a full 10–9999 range): bytes/orbit. The calls
// and parties are the SIP layer's and are made before measuring.
func BenchmarkParkedOrbitMemory(b *testing.B) {
	const n = 9990
	calls := make([]Call, n)
	for i := range calls {
		calls[i] = fakeCall("orbit-" + strconv.Itoa(i))
	}
	p := pol("Global", 10, 9999)
	var perOrbit float64
	for b.Loop() {
		l := NewLot(RealClock(), Config{}, nopRinger{}, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, c := range calls {
			if _, err := l.Park(context.Background(), p, c, alice, ken); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perOrbit = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(l)
		closeLot(b, l)
	}
	b.ReportMetric(perOrbit, "bytes/orbit")
}
