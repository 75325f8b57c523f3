package main

import (
	"context"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/store/memstore"
)

// BenchmarkRegisterLatency measures REGISTER → 200 through the real server
// on loopback, the 401 challenge round trip included, with registrations
// written to the embedded NATS store (the default) and to a memory store,
// which stands for a registrar that keeps bindings in process only.
func BenchmarkRegisterLatency(b *testing.B) {
	for _, bc := range []struct {
		name string
		tune func(*sip.Options)
	}{
		{"embedded-nats", nil},
		{"memory", func(o *sip.Options) { o.Store = memstore.New(memstore.Options{}).Open("bench", "") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := startServer(b, "", bc.tune)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			p := phone(b, ctx, ts, "1001", "udp")
			ds := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := p.Register(ctx, 300); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, "register", ds)
		})
	}
}

// BenchmarkClusterCallSetup measures INVITE → 200 (the 407 round trip
// included) from a phone on node a to a user whose phone is on node b,
// through both switches on a three-server NATS cluster, and on a alone for
// comparison.
func BenchmarkClusterCallSetup(b *testing.B) {
	urls := natsClusterTB(b)
	a := startServerWith(b, serverSetup{nodeID: "a", natsURLs: urls, listens: sipListensAt("127.0.0.1:0")})
	nb := startServerWith(b, serverSetup{nodeID: "b", natsURLs: urls, listens: sipListensAt("127.0.0.2:0")})
	waitUntil(b, 5*time.Second, "each node to see the other", func() bool {
		return a.sw.Peers()["b"] == nb.udpAddr() && nb.sw.Peers()["a"] == a.udpAddr()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice := phone(b, ctx, a, "1001", "udp")
	for _, bc := range []struct {
		name string
		on   *testServer
	}{{"across-nodes", nb}, {"same-node", a}} {
		b.Run(bc.name, func(b *testing.B) {
			callee := phone(b, ctx, bc.on, "1003", "udp")
			callee.AutoAnswer(true)
			defer func() {
				callee.Unregister(ctx)
				callee.Close()
			}()
			ds := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				c, err := alice.Dial(ctx, "1003")
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
				cc := <-callee.Answered()
				c.Hangup(ctx)
				<-cc.Done()
			}
			b.StopTimer()
			reportPercentiles(b, "setup", ds)
		})
	}
}
