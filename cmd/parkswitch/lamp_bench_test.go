package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// Park lamp benchmarks: many desk phones, each with a row of BLF keys on
// park codes, subscribed to the real server over UDP on loopback.

// lampUsers is the configuration of n more staff users (DemoPark, codes
// 10–99), 2000 and up, password demo<user>.
func lampUsers(n int) string {
	var b strings.Builder
	for i := range n {
		u := strconv.Itoa(2000 + i)
		fmt.Fprintf(&b, "  - id: %s@contoso.com\n    password: demo%s\n    groups: [staff]\n", u, u)
	}
	return b.String()
}

// lampNote is one NOTIFY a bench phone received.
type lampNote struct {
	code int
	busy bool
	at   time.Time
}

// keyRows subscribes each of phones to keys codes (10 and up, wrapping at
// 99) and reads every NOTIFY into notes, stamped as it is read, until ctx
// ends. It returns the subscriptions.
func keyRows(b *testing.B, ctx context.Context, phones []*siptest.Phone, keys int, notes chan<- lampNote) []*siptest.Subscription {
	b.Helper()
	subs := make([][]*siptest.Subscription, len(phones))
	errs := make(chan error, len(phones))
	var readers sync.WaitGroup
	for i, p := range phones {
		go func() {
			for k := range keys {
				code := 10 + k%90
				s, err := p.Subscribe(ctx, strconv.Itoa(code), "dialog", 3600)
				if err != nil {
					errs <- fmt.Errorf("phone %d, key %d: %w", i, code, err)
					return
				}
				subs[i] = append(subs[i], s)
				readers.Add(1)
				go func() {
					defer readers.Done()
					for {
						select {
						case n := <-s.Notifies():
							select {
							case notes <- lampNote{code, strings.Contains(string(n.Body()), "<state>confirmed</state>"), time.Now()}:
							case <-ctx.Done():
								return
							}
						case <-ctx.Done():
							return
						}
					}
				}()
			}
			errs <- nil
		}()
	}
	for range phones {
		if err := <-errs; err != nil {
			b.Fatalf("SUBSCRIBE: %v", err)
		}
	}
	b.Cleanup(readers.Wait)
	var all []*siptest.Subscription
	for _, row := range subs {
		all = append(all, row...)
	}
	return all
}

// awaitLamps collects n NOTIFYs showing code busy (or free) and returns
// how long after since each arrived; others are dropped.
func awaitLamps(b *testing.B, notes <-chan lampNote, code int, busy bool, n int, since time.Time) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, n)
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case x := <-notes:
			if x.code == code && x.busy == busy {
				out = append(out, x.at.Sub(since))
			}
		case <-timeout:
			b.Fatalf("%d of %d lamps of %d showed busy=%v in 10 s", len(out), n, code, busy)
		}
	}
	return out
}

// BenchmarkLampNotify measures, with 100 phones each watching 20 codes
// (10–29: 2,000 subscriptions, 100 per code), how long after the parker
// has the 202 of a directed park each of the code's 100 lamps has its
// NOTIFY (lit), and after the parked caller has the 200 to its BYE each
// has the NOTIFY that the code is free (dark). One iteration is one park
// at the next code of the row; run with -benchtime 50x.
func BenchmarkLampNotify(b *testing.B) {
	const phones, keys = 100, 20
	ts := startServer(b, lampUsers(phones), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice := phone(b, ctx, ts, "1001", "udp")
	bob := phone(b, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)
	var ps []*siptest.Phone
	for i := range phones {
		ps = append(ps, newPhone(b, ctx, ts.udpAddr(), strconv.Itoa(2000+i), "udp"))
	}
	notes := make(chan lampNote, phones*keys*2)
	start := time.Now()
	keyRows(b, ctx, ps, keys, notes)
	for range phones * keys { // the first NOTIFY of each: all dark
		<-notes
	}
	b.Logf("%d subscriptions in %v", ts.sw.Subscriptions(), time.Since(start).Round(time.Millisecond))

	var lit, dark []time.Duration
	b.ResetTimer()
	for i := range b.N {
		code := 10 + i%keys
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			b.Fatal(err)
		}
		bc := <-bob.Answered()
		st, err := bc.Refer(ctx, "sip:"+strconv.Itoa(code)+"@"+testDomain)
		accepted := time.Now()
		if err != nil || st != 202 {
			b.Fatalf("park at %d: %d %v", code, st, err)
		}
		lit = append(lit, awaitLamps(b, notes, code, true, phones, accepted)...)
		bc.Hangup(ctx)
		if err := a.Hangup(ctx); err != nil {
			b.Fatal(err)
		}
		dark = append(dark, awaitLamps(b, notes, code, false, phones, time.Now())...)
	}
	b.StopTimer()
	reportPercentiles(b, "lit-after-202", lit)
	reportPercentiles(b, "dark-after-bye", dark)
}

// BenchmarkLampMemory measures the heap the switch holds per park lamp
// subscription: 100 phones subscribe n in all (n/100 keys each), then
// once the SIP transactions of the set-up are over (Timer J, 32 s over
// UDP) the live heap is read after a GC; the phones then un-subscribe,
// keeping their side of each, and it is read again. The difference is the
// switch's (live-B/sub); the -all figures, against the heap before the
// subscriptions, count the test phones' side too. Run with
// -benchtime 1x; PARKSWITCH_BENCH_DRAIN changes the 34 s wait.
func BenchmarkLampMemory(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run("subs="+strconv.Itoa(n), func(b *testing.B) { benchLampMemory(b, n) })
	}
}

func benchLampMemory(b *testing.B, n int) {
	const phones = 100
	drain := 34 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PARKSWITCH_BENCH_DRAIN")); err == nil {
		drain = d
	}
	ts := startServer(b, lampUsers(phones), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var ps []*siptest.Phone
	for i := range phones {
		ps = append(ps, newPhone(b, ctx, ts.udpAddr(), strconv.Itoa(2000+i), "udp"))
	}
	notes := make(chan lampNote, 2*n)
	heap := func() (inuse, live uint64) {
		time.Sleep(drain)
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, m.HeapAlloc
	}
	for range b.N {
		in0, live0 := heap()
		start := time.Now()
		subs := keyRows(b, ctx, ps, n/phones, notes)
		for range n {
			<-notes
		}
		if got := ts.sw.Subscriptions(); got != n {
			b.Fatalf("%d subscriptions, want %d", got, n)
		}
		b.Logf("%d subscriptions in %v", n, time.Since(start).Round(time.Millisecond))
		in1, live1 := heap()
		for _, s := range subs {
			if st, err := s.Unsubscribe(ctx); err != nil || st != 200 {
				b.Fatalf("un-subscribe: %d %v", st, err)
			}
		}
		for range n {
			<-notes
		}
		_, live2 := heap()
		runtime.KeepAlive(subs)
		per := func(x, y uint64) float64 { return (float64(x) - float64(y)) / float64(n) }
		b.ReportMetric(per(live1, live2), "live-B/sub")
		b.ReportMetric(per(live1, live0), "live-B/sub-all")
		b.ReportMetric(per(in1, in0), "heapinuse-B/sub-all")
	}
}
