package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// BenchmarkWebhookDelay measures how long after the parker's phone has
// the 202 for its park a webhook receiver on loopback has the signed POST
// of the parked event: the switch's event queue, the embedded NATS
// JetStream store, the follower, the webhook's queue and one HTTP POST.
// Run it with -benchtime 100x for 100 parks.
func BenchmarkWebhookDelay(b *testing.B) {
	rv := newHookReceiver(b)
	ts := startServer(b, "notify:\n  webhooks:\n    - url: "+rv.srv.URL+"/hook\n      format: json\n      events: [parked]\n      secret: "+hookSecret+"\n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice := phone(b, ctx, ts, "1001", "udp")
	bob := phone(b, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)

	var after202 []time.Duration
	b.ResetTimer()
	for range b.N {
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			b.Fatal(err)
		}
		bc := <-bob.Answered()
		code, err := bc.Refer(ctx, parkURI)
		accepted := time.Now()
		if err != nil || code != 202 {
			b.Fatalf("park: %d %v", code, err)
		}
		p := rv.next(b, "/hook")
		var e store.Event
		if err := json.Unmarshal(p.body, &e); err != nil || e.Type != store.EventParked || e.CallID != a.CallID() {
			b.Fatalf("posted %s (%v), want parked for %s", p.body, err, a.CallID())
		}
		signed(b, p, hookSecret)
		after202 = append(after202, p.at.Sub(accepted))
		select {
		case <-bob.Messages():
		case <-time.After(5 * time.Second):
			b.Fatal("no park code")
		}
		bc.Hangup(ctx)
		a.Hangup(ctx) // frees the code
	}
	b.StopTimer()
	reportPercentiles(b, "post-after-202", after202)
}
