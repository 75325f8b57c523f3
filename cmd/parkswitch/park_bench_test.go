package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
)

// BenchmarkParkRetrieveLatency measures, through the real server on
// loopback: REFER → 202 (park) and INVITE → 200 for the retrieve, which
// includes the re-INVITE of the parked party (and, as phones do, the 407
// challenge round trip). p50/p99 are reported in milliseconds, with the
// state in the embedded NATS server and on a three-server NATS cluster.
func BenchmarkParkRetrieveLatency(b *testing.B) {
	b.Run("store=embedded", func(b *testing.B) { benchParkRetrieve(b, nil) })
	b.Run("store=cluster3", func(b *testing.B) { benchParkRetrieve(b, natstest.StartCluster(b, 3)) })
}

func benchParkRetrieve(b *testing.B, cluster []*natstest.Server) {
	ts := startServer(b, clusterYAML(cluster), nil)
	stopAfterServer(b, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice := phone(b, ctx, ts, "1001", "udp")
	bob := phone(b, ctx, ts, "1002", "udp")
	carol := phone(b, ctx, ts, "1003", "udp")
	bob.AutoAnswer(true)

	var parks, retrieves []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			b.Fatal(err)
		}
		bc := <-bob.Answered()
		start := time.Now()
		code, err := bc.Refer(ctx, parkURI)
		parks = append(parks, time.Since(start))
		if err != nil || code != 202 {
			b.Fatalf("park: %d %v", code, err)
		}
		var msg string
		select {
		case m := <-bob.Messages():
			msg = string(m.Body())
		case <-time.After(5 * time.Second):
			b.Fatal("no park code")
		}
		bc.Hangup(ctx)
		code2 := msg[len(msg)-2:]
		start = time.Now()
		c, err := carol.Dial(ctx, code2)
		retrieves = append(retrieves, time.Since(start))
		if err != nil {
			b.Fatalf("retrieve %s: %v", code2, err)
		}
		c.Hangup(ctx)
		select {
		case <-a.Done():
		case <-time.After(5 * time.Second):
			b.Fatal("call did not end")
		}
	}
	b.StopTimer()
	reportPercentiles(b, "park", parks)
	reportPercentiles(b, "retrieve", retrieves)
}

// reportPercentiles reports the p50 and p99 of ds in milliseconds.
func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	p := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), name+"-p50-ms")
	b.ReportMetric(p(0.99), name+"-p99-ms")
}

// BenchmarkParkEventDelay measures how long after the parker's phone has
// the 202 for its park the parked event reaches an SSE client of
// GET /api/v1/events, through the real server and its embedded NATS
// JetStream store; and, for scale, after the REFER was sent. The event is
// queued before the 202 is sent, so a delay can be negative. Run it with
// -benchtime 100x for 100 parks.
func BenchmarkParkEventDelay(b *testing.B) {
	ts := startServer(b, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice := phone(b, ctx, ts, "1001", "udp")
	bob := phone(b, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)
	events := openEvents(b, ts, "?type=parked", nil)

	var after202, afterRefer []time.Duration
	b.ResetTimer()
	for range b.N {
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			b.Fatal(err)
		}
		bc := <-bob.Answered()
		sent := time.Now()
		code, err := bc.Refer(ctx, parkURI)
		accepted := time.Now()
		if err != nil || code != 202 {
			b.Fatalf("park: %d %v", code, err)
		}
		it := events.next(b)
		if it.ev.Type != store.EventParked || it.ev.CallID != a.CallID() {
			b.Fatalf("event %s for call %s, want parked for %s", it.ev.Type, it.ev.CallID, a.CallID())
		}
		after202 = append(after202, it.at.Sub(accepted))
		afterRefer = append(afterRefer, it.at.Sub(sent))
		select {
		case <-bob.Messages():
		case <-time.After(5 * time.Second):
			b.Fatal("no park code")
		}
		bc.Hangup(ctx)
		a.Hangup(ctx) // frees the code
	}
	b.StopTimer()
	reportPercentiles(b, "event-after-202", after202)
	reportPercentiles(b, "event-after-refer", afterRefer)
}

// clusterYAML is the state section pointing at cluster, "" for none.
func clusterYAML(cluster []*natstest.Server) string {
	if len(cluster) == 0 {
		return ""
	}
	return "state:\n  nats_urls: [\"" + strings.Join(natstest.URLs(cluster), "\", \"") + "\"]\n"
}

// stopAfterServer stops the NATS servers once the switch started after
// them has shut down, before the harness looks for goroutines left.
func stopAfterServer(tb testing.TB, cluster []*natstest.Server) {
	for _, n := range cluster {
		tb.Cleanup(n.Stop)
	}
}
