package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// BenchmarkBoardLatency parks PARKSWITCH_BENCH_PARKS calls (default 100)
// one after another through the switch while the board is open in
// headless Chromium, and reports how long after each REFER's 202 the
// board showed the call (p50, p99, max): the event through the store and
// the stream, the fetch of the rows, the page updated. Each parked party
// hangs up and its row goes before the next park. It runs once whatever
// b.N is.
func BenchmarkBoardLatency(b *testing.B) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("PARKSWITCH_BENCH_PARKS")); err == nil && v > 0 {
		n = v
	}
	br := startBrowser(b)
	ts := startServer(b, "", nil) // open pages: the sign-in is not measured
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice, bob := phone(b, ctx, ts, "1001", "udp"), phone(b, ctx, ts, "1002", "udp")
	bob.AutoAnswer(true)
	br.goTo("http://" + ts.httpAddr() + "/")
	if err := br.wait("#live:not([hidden])", "attached", 5*time.Second); err != nil {
		b.Fatalf("the board's event stream did not open: %v", err)
	}
	took := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := range n {
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			b.Fatalf("call %d: %v", i, err)
		}
		pb := <-bob.Answered()
		if st, err := pb.Refer(ctx, parkURI); err != nil || st != 202 {
			b.Fatalf("park %d: %d %v", i, st, err)
		}
		at := time.Now()
		code := 10 + i%90 // each park takes the next code of 10–99
		sel := fmt.Sprintf(`#board tr[data-key="DemoPark/%d"]`, code)
		if err := br.wait(sel, "attached", 5*time.Second); err != nil {
			b.Fatalf("park %d: not on the board: %v", i, err)
		}
		took = append(took, time.Since(at))
		select {
		case <-bob.Messages():
		case <-time.After(5 * time.Second):
		}
		pb.Hangup(ctx)
		a.Hangup(ctx)
		if err := br.wait(sel, "detached", 5*time.Second); err != nil {
			b.Fatalf("park %d: still on the board after the hang-up: %v", i, err)
		}
	}
	b.StopTimer()
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99-1)/100]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	b.ReportMetric(float64(len(took)), "parks")
}

// BenchmarkBoard1000 parks PARKSWITCH_BENCH_PARKED calls (default 1,000)
// on the real binary and then fetches the board page and its rows (what
// the script fetches on every change) over loopback: it reports the time
// of one fetch (the server listing the orbits and rendering them, and the
// transfer; p50 and max of 20) and the bytes of each. It runs once
// whatever b.N is.
func BenchmarkBoard1000(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("PARKSWITCH_BENCH_PARKED")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	sipPort, httpPort := freeUDPPort(b), freeUDPPort(b)
	cfg := strings.Replace(strings.Replace(baseConfig, "%d", "10000", 1), "%d", "19999", 1)
	cfg = strings.Replace(cfg, "  domain: contoso.com\n", "  domain: contoso.com\n"+
		"  sip_listen: [\"udp://127.0.0.1:"+strconv.Itoa(sipPort)+"\"]\n"+
		"  http_listen: \"127.0.0.1:"+strconv.Itoa(httpPort)+"\"\n", 1)
	cfg += "state:\n  data_dir: state\n  node_id: bench\n"
	path := filepath.Join(dir, "parkswitch.yaml")
	writeFile(b, path, cfg)
	writeFile(b, filepath.Join(dir, "policies.yaml"), strings.Replace(basePolicies,
		"  - identity: DemoPark\n    allow_call_park: true\n",
		"  - identity: DemoPark\n    allow_call_park: true\n    pickup_range_start: 5000\n    pickup_range_end: 6999\n    park_timeout_seconds: 1800\n", 1))
	apiURL := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	serveBinary(b, ctx, path, apiURL)
	parkMany(b, ctx, "127.0.0.1:"+strconv.Itoa(sipPort), n)
	waitUntil(b, 30*time.Second, "every orbit listed", func() bool { return len(getOrbits(b, apiURL)) == n })

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(p string) int {
		res, err := c.Get(apiURL + p)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("GET %s: %d %v", p, res.StatusCode, err)
		}
		if got := strings.Count(string(body), "<tr data-key="); got != n {
			b.Fatalf("GET %s: %d rows, want %d", p, got, n)
		}
		return len(body)
	}
	pageBytes := get("/") // also the session of the open pages
	const fetches = 20
	rowsBytes := 0
	var took []time.Duration
	b.ResetTimer()
	for range fetches {
		start := time.Now()
		rowsBytes = get("/board/rows")
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	// For comparison: the same listing as JSON, by the admin API.
	var api []time.Duration
	for range fetches {
		start := time.Now()
		if got := len(getOrbits(b, apiURL)); got != n {
			b.Fatalf("GET /api/v1/orbits: %d orbits, want %d", got, n)
		}
		api = append(api, time.Since(start))
	}
	slices.Sort(took)
	slices.Sort(api)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(api[len(api)/2]), "orbits-api-p50-ms")
	b.ReportMetric(ms(took[len(took)/2]), "rows-p50-ms")
	b.ReportMetric(ms(took[len(took)-1]), "rows-max-ms")
	b.ReportMetric(float64(rowsBytes), "rows-bytes")
	b.ReportMetric(float64(pageBytes), "page-bytes")
	b.ReportMetric(float64(n), "parked")
}

// parkMany has 1001 call 1002 n times and 1002 park each call; the
// parked parties stay on music until the test ends.
func parkMany(b *testing.B, ctx context.Context, sipAddr string, n int) []*siptest.Call {
	alice, bob := phoneAt(b, ctx, sipAddr, "1001", "udp"), phoneAt(b, ctx, sipAddr, "1002", "udp")
	bob.AutoAnswer(true)
	parked := make([]*siptest.Call, 0, n)
	for i := range n {
		a, err := alice.Dial(ctx, "1002")
		if err != nil {
			b.Fatalf("call %d: %v", i, err)
		}
		bc := <-bob.Answered()
		if st, err := bc.Refer(ctx, parkURI); err != nil || st != 202 {
			b.Fatalf("park %d: %d %v", i, st, err)
		}
		select {
		case <-a.ReInvites():
		case <-time.After(5 * time.Second):
			b.Fatalf("park %d: no hold re-INVITE", i)
		}
		select {
		case <-bob.Messages():
		case <-time.After(5 * time.Second):
		}
		bc.Hangup(ctx)
		parked = append(parked, a)
	}
	return parked
}
