package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestSoak is `make soak`, not part of `make test`: the real binary for
// PARKSWITCH_SOAK (a duration, e.g. 1h) under
//
//   - SIPp trunk calls at PARKSWITCH_SOAK_RATE calls/s (default 1250, half
//     the sustained rate in BENCHMARKS.md) to a SIPp answering phone;
//   - PARKSWITCH_SOAK_PARKED (default 500) calls parked at once, churning:
//     each is parked by REFER, then retrieved by code after 5–115 s or
//     (one in five) left to ring back to its parker at 120 s, who answers;
//     then hung up, and parked again;
//   - every phone registering again each minute.
//
// The events and call-records streams are bounded at soakStreamMB each, so
// that both are full, and dropping their oldest, within the warm-up. At the
// default bounds (512 MiB and 1 GiB) they fill at minutes 15 and 25 at
// 1,000 calls/s, and dropping from a stream's oldest block keeps that
// block's 8 MB cache in the file store: a step of RSS once the bounds are
// reached, which is not growth of the switch (BENCHMARKS.md, Soak).
//
// Every 10 s it samples goroutines, RTP ports, dialogs, open descriptors
// and RSS from /metrics into soak.csv (and soak.svg) in PARKSWITCH_SOAK_OUT
// (default bin/soak). It fails on a failed SIPp call or churn step, and on
// growth after PARKSWITCH_SOAK_WARMUP (default 10m): the last fifth of the
// run against the fifth after the warm-up.
func TestSoak(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("PARKSWITCH_SOAK"))
	if err != nil || dur <= 0 {
		t.Skip("PARKSWITCH_SOAK (a duration) not set: make soak")
	}
	requireSipp(t)
	sk := newSoak(t, dur)
	sk.run(t)
}

type soak struct {
	dur, warmup   time.Duration
	rate, parked  int
	out, dir      string
	pprof         string // the switch's debug.pprof_listen, for goroutine dumps in a pile-up
	sipAddr, api  string
	trunk, uas    int
	parkers       []*siptest.Phone // p<i>: calls are parked by these
	parkedPhones  []*siptest.Phone // q<i>: the parked parties
	retrievers    []*siptest.Phone
	failures      atomic.Int64
	cycles        atomic.Int64
	ringbacks     atomic.Int64
	retrieves     atomic.Int64
	failMu        sync.Mutex
	firstFailures []string
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func newSoak(t *testing.T, dur time.Duration) *soak {
	sk := &soak{dur: dur, warmup: 10 * time.Minute, rate: envInt("PARKSWITCH_SOAK_RATE", 1250),
		parked: envInt("PARKSWITCH_SOAK_PARKED", 500), out: os.Getenv("PARKSWITCH_SOAK_OUT")}
	if w, err := time.ParseDuration(os.Getenv("PARKSWITCH_SOAK_WARMUP")); err == nil {
		sk.warmup = w
	}
	if sk.out == "" {
		sk.out = filepath.Join("..", "..", "bin", "soak")
	}
	if err := os.MkdirAll(sk.out, 0o755); err != nil {
		t.Fatal(err)
	}
	sk.dir = t.TempDir()
	sip, web, prof := freeUDPPort(t), freeUDPPort(t), freeUDPPort(t)
	sk.pprof = "http://127.0.0.1:" + strconv.Itoa(prof)
	sk.trunk, sk.uas = freeUDPPort(t), freeUDPPort(t)
	sk.sipAddr, sk.api = "127.0.0.1:"+strconv.Itoa(sip), "http://127.0.0.1:"+strconv.Itoa(web)
	var users strings.Builder
	user := func(id string) {
		fmt.Fprintf(&users, "  - id: %s@contoso.com\n    password: demo%s\n    groups: [soak]\n", id, id)
	}
	for i := range sk.parked {
		user("p" + strconv.Itoa(i))
		user("q" + strconv.Itoa(i))
	}
	for i := range 10 {
		user("r" + strconv.Itoa(i))
	}
	writeFile(t, filepath.Join(sk.dir, "parkswitch.yaml"), fmt.Sprintf(`server:
  domain: contoso.com
  sip_listen: ["udp://%s"]
  http_listen: "127.0.0.1:%d"
media:
  rtp_port_min: 10000
  rtp_port_max: 29999
  rtp_timeout_seconds: 0
park:
  policy_file: policies.yaml
  announce: false
state:
  data_dir: state
  cdr_max_mb: %d
  events_max_mb: %d
users:
  - id: 2000@contoso.com
    password: soak-not-used
    contact: sip:2000@127.0.0.3:%d
%strunks:
  - name: carrier
    address: 127.0.0.2:%d
    transport: udp
debug:
  pprof_listen: 127.0.0.1:%d
`, sk.sipAddr, web, soakStreamMB, soakStreamMB, sk.uas, users.String(), sk.trunk, prof))
	writeFile(t, filepath.Join(sk.dir, "policies.yaml"), `policies:
  - identity: Global
  - identity: SoakPark
    allow_call_park: true
    pickup_range_start: 1000
    pickup_range_end: 1999
    park_timeout_seconds: 120
assignments:
  groups:
    - group: soak
      policy: SoakPark
      rank: 1
`)
	return sk
}

func (sk *soak) fail(format string, args ...any) {
	sk.failures.Add(1)
	sk.failMu.Lock()
	if len(sk.firstFailures) < 20 {
		sk.firstFailures = append(sk.firstFailures, fmt.Sprintf(format, args...))
	}
	sk.failMu.Unlock()
}

func (sk *soak) run(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), sk.dur+5*time.Minute)
	defer cancel()
	bin, _ := serveBinary(t, ctx, filepath.Join(sk.dir, "parkswitch.yaml"), sk.api)
	sk.phones(t, ctx)

	// The bench's UAS, not SIPp's own: that one aborts a call when the
	// switch retransmits its INVITE after the 180 and 200 (testdata/bench/uas.xml says why).
	scenario, err := filepath.Abs("../../testdata/bench/uas.xml") // SIPp runs in a directory of its own
	if err != nil {
		t.Fatal(err)
	}
	uas := startSipp(t, ctx, "-timeout", strconv.Itoa(int((sk.dur+3*time.Minute).Seconds()))+"s",
		"-sf", scenario, "-default_behaviors", "all,-abortunexp",
		"-i", "127.0.0.3", "-p", strconv.Itoa(sk.uas), "-buff_size", "4194304")
	time.Sleep(300 * time.Millisecond)
	calls := int(sk.dur.Seconds()) * sk.rate
	uac := startSipp(t, ctx, "-timeout", strconv.Itoa(int((sk.dur+2*time.Minute).Seconds()))+"s",
		sk.sipAddr, "-sn", "uac", "-s", "2000", "-i", "127.0.0.2", "-p", strconv.Itoa(sk.trunk),
		"-r", strconv.Itoa(sk.rate), "-m", strconv.Itoa(calls), "-l", "5000", "-d", "0",
		"-buff_size", "4194304", "-default_behaviors", "all,-abortunexp", "-trace_stat", "-stf", filepath.Join(sk.out, "sipp_uac.csv"))

	churn, stop := context.WithTimeout(ctx, sk.dur)
	defer stop()
	var wg sync.WaitGroup
	for i := range sk.parked {
		wg.Go(func() {
			// Spread the first parks over a minute.
			sleepCtx(churn, time.Duration(i)*time.Minute/time.Duration(sk.parked))
			sk.churn(churn, i)
		})
	}
	wg.Go(func() { sk.refresh(churn) })
	samples := sk.sample(t, churn, bin.Process.Pid)
	wg.Wait()

	if err := uac.cmd.Wait(); err != nil {
		sk.fail("sipp uac: %v\n%s", err, tail(uac.out.String(), 1500))
	}
	uas.cmd.Process.Kill()
	sk.checkSippTotals(calls)
	t.Logf("%d park cycles (%d retrieved, %d rung back), %d failures; SIPp %d calls at %d/s",
		sk.cycles.Load(), sk.retrieves.Load(), sk.ringbacks.Load(), sk.failures.Load(), calls, sk.rate)
	for _, f := range sk.firstFailures {
		t.Errorf("failure: %s", f)
	}
	sk.checkGrowth(t, samples)
}

// phones registers every phone of the churn.
func (sk *soak) phones(t *testing.T, ctx context.Context) {
	// Closed all at once: a phone gives each call a second to hang up,
	// and one after another a thousand phones would take minutes.
	var made []*siptest.Phone
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range made {
			wg.Go(func() { p.Close() })
		}
		wg.Wait()
	})
	mk := func(user string) *siptest.Phone {
		p, err := siptest.NewPhone(ctx, siptest.Config{User: user, Password: "demo" + user, Domain: testDomain,
			Server: sk.sipAddr, Transport: "udp", Logger: zerolog.Nop()})
		if err != nil {
			t.Fatalf("phone %s: %v", user, err)
		}
		made = append(made, p)
		if err := p.Register(ctx, 120); err != nil {
			t.Fatalf("register %s: %v", user, err)
		}
		return p
	}
	for i := range sk.parked {
		sk.parkers = append(sk.parkers, mk("p"+strconv.Itoa(i)))
		sk.parkedPhones = append(sk.parkedPhones, mk("q"+strconv.Itoa(i)))
		sk.parkers[i].AutoAnswer(true) // answers its ringbacks
	}
	for i := range 10 {
		sk.retrievers = append(sk.retrievers, mk("r"+strconv.Itoa(i)))
	}
}

// refresh registers every phone again each minute, spread over it.
func (sk *soak) refresh(ctx context.Context) {
	all := append(append(append([]*siptest.Phone{}, sk.parkers...), sk.parkedPhones...), sk.retrievers...)
	for ctx.Err() == nil {
		for _, p := range all {
			if !sleepCtx(ctx, time.Minute/time.Duration(len(all))) {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := p.Register(rctx, 120); err != nil && ctx.Err() == nil {
				sk.fail("re-register %s: %v", p.AOR(), err)
			}
			cancel()
		}
	}
}

// churn parks, and retrieves or lets ring back, one call after another
// between q<i> and p<i> until ctx ends.
func (sk *soak) churn(ctx context.Context, i int) {
	parker, parked := sk.parkers[i], sk.parkedPhones[i]
	for ctx.Err() == nil {
		if err := sk.cycle(ctx, parker, parked); err != nil && ctx.Err() == nil {
			sk.fail("pair %d: %v", i, err)
			sleepCtx(ctx, 5*time.Second)
		}
		sk.cycles.Add(1)
	}
}

func (sk *soak) cycle(ctx context.Context, parker, parked *siptest.Phone) (err error) {
	step, cancel := context.WithTimeout(ctx, 200*time.Second)
	defer cancel()
	// A step that failed hangs up what it left, so that a refusal (a
	// park refused with 503 while the machine stalled) is not counted
	// again as a leaked call.
	var left []*siptest.Call
	defer func() {
		if err == nil {
			return
		}
		hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, c := range left {
			if c != nil && c.Established() {
				c.Hangup(hctx)
			}
		}
	}()
	// A ringback the parker answered just as a retriever took the call
	// lost the race and was hung up by the switch after the last cycle
	// moved on; it is not this call's answer.
	for stale := true; stale; {
		select {
		case <-parker.Answered():
		default:
			stale = false
		}
	}
	got := make(chan *siptest.Call, 1)
	go func() {
		for {
			select {
			case c := <-parker.Answered():
				select {
				case <-c.Done():
					continue // the same, come late
				default:
				}
				got <- c
			case <-step.Done():
				got <- nil
			}
			return
		}
	}()
	a, err := parked.Dial(step, parker.AOR())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	b := <-got
	left = append(left, a, b)
	if b == nil {
		return fmt.Errorf("the parker did not answer")
	}
	if code, err := b.Refer(step, parkURI); err != nil || code != 202 {
		return fmt.Errorf("REFER to park: %d %v", code, err)
	}
	var code string
	select {
	case m := <-parker.Messages():
		body := string(m.Body())
		if j := strings.Index(body, "parked at "); j >= 0 {
			code = strings.TrimSpace(body[j+len("parked at "):])
		}
	case <-time.After(10 * time.Second):
	}
	if code == "" {
		return fmt.Errorf("no park code")
	}
	if err := b.Hangup(step); err != nil {
		select {
		case <-b.Done(): // the switch released the parker first
		default:
			return fmt.Errorf("parker hang-up: %w", err)
		}
	}
	// A fifth of the calls are left to ring back (at 120 s); the others
	// are retrieved by code well before, never racing their ringback.
	ringback := rand.N(5) == 0
	wait := 5*time.Second + rand.N(110*time.Second)
	if ringback {
		wait = 150 * time.Second
	}
	select {
	case rb := <-parker.Answered(): // rung back and answered
		sk.ringbacks.Add(1)
		left = append(left, rb)
		sleepCtx(step, time.Second)
		if err := rb.Hangup(step); err != nil {
			return fmt.Errorf("hang up the ringback: %w", err)
		}
	case <-time.After(wait):
		if ringback {
			return fmt.Errorf("no ringback of %s within %v", code, wait)
		}
		r := sk.retrievers[rand.N(len(sk.retrievers))]
		rc, err := r.Dial(step, code)
		if err != nil {
			return fmt.Errorf("retrieve %s: %w", code, err)
		}
		left = append(left, rc)
		sk.retrieves.Add(1)
		sleepCtx(step, time.Second)
		if err := rc.Hangup(step); err != nil {
			return fmt.Errorf("hang up the retrieved call: %w", err)
		}
	case <-a.Done():
		return fmt.Errorf("the parked call ended by itself: %v", a.EndReason())
	case <-step.Done():
		return nil
	}
	select {
	case <-a.Done():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the parked party got no BYE")
	}
}

// checkSippTotals fails the soak unless every one of the calls SIPp placed
// succeeded. Its exit status alone does not say so: a call that got a final
// response its scenario did not expect waits to the end, counted neither
// successful nor failed.
func (sk *soak) checkSippTotals(calls int) {
	f, err := os.ReadFile(filepath.Join(sk.out, "sipp_uac.csv"))
	if err != nil {
		sk.fail("sipp statistics: %v", err)
		return
	}
	rows := strings.Split(strings.TrimSpace(string(f)), "\n")
	head, last := strings.Split(rows[0], ";"), strings.Split(rows[len(rows)-1], ";")
	col := func(name string) int {
		for i, h := range head {
			if h == name && i < len(last) {
				n, _ := strconv.Atoi(last[i])
				return n
			}
		}
		return -1
	}
	ok, failed, open := col("SuccessfulCall(C)"), col("FailedCall(C)"), col("CurrentCall")
	if ok != calls || failed != 0 || open != 0 {
		sk.fail("sipp: %d calls placed, %d successful, %d failed, %d never completed", calls, ok, failed, open)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// soakSample is one reading of the server.
type soakSample struct {
	at                                       time.Duration
	goroutines, ports, dialogs, fds, rss, pk float64
}

var soakColumns = []string{"goroutines", "rtp_ports", "dialogs", "open_fds", "rss_mib", "parked"}

func (s soakSample) values() []float64 {
	return []float64{s.goroutines, s.ports, s.dialogs, s.fds, s.rss, s.pk}
}

// sample reads /metrics every 10 s until ctx ends, writing soak.csv.
func (sk *soak) sample(t *testing.T, ctx context.Context, pid int) []soakSample {
	f, err := os.Create(filepath.Join(sk.out, "soak.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "seconds,%s\n", strings.Join(soakColumns, ","))
	start := time.Now()
	var out []soakSample
	dumps := 0
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			sk.plot(t, out)
			return out
		case <-tick.C:
		}
		m, err := scrape(sk.api + "/metrics")
		if err != nil {
			sk.fail("metrics: %v", err)
			continue
		}
		s := soakSample{at: time.Since(start), goroutines: m["go_goroutines"], ports: m["parkswitch_rtp_ports_in_use"],
			dialogs: m["parkswitch_dialogs"], fds: m["process_open_fds"], rss: m["process_resident_memory_bytes"] / (1 << 20),
			pk: float64(sk.parkedNow())}
		if n := len(out); n > 0 && s.ports > 1000 && s.ports > 2*out[n-1].ports && dumps < maxSoakDumps {
			dumps++
			sk.dumpGoroutines(t, s.at)
		}
		out = append(out, s)
		fmt.Fprintf(f, "%.0f", s.at.Seconds())
		for _, v := range s.values() {
			fmt.Fprintf(f, ",%.1f", v)
		}
		fmt.Fprintln(f)
	}
}

// maxSoakDumps bounds the goroutine dumps of one soak.
const maxSoakDumps = 5

// soakStreamMB bounds the soak's events and call-records streams (see
// TestSoak): at 1,000 calls/s each fills in about two minutes, with blocks
// of 8 MB as at the default bounds.
const soakStreamMB = 64

// dumpGoroutines writes every goroutine's stack of the switch into the
// output directory: taken when its relay ports pile up, it shows what the
// calls are waiting for.
func (sk *soak) dumpGoroutines(t *testing.T, at time.Duration) {
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get(sk.pprof + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		t.Logf("goroutine dump at %v: %v", at, err)
		return
	}
	defer res.Body.Close()
	name := filepath.Join(sk.out, fmt.Sprintf("goroutines-%04.0f.txt", at.Seconds()))
	f, err := os.Create(name)
	if err != nil {
		t.Logf("goroutine dump: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, io.LimitReader(res.Body, 64<<20)); err != nil {
		t.Logf("goroutine dump: %v", err)
	}
	t.Logf("relay ports piled up at %v: goroutines in %s", at.Round(time.Second), name)
}

// parkedNow is how many of the churn's calls are parked, from the API.
func (sk *soak) parkedNow() int {
	res, err := http.Get(sk.api + "/api/v1/orbits")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	n := 0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		n += strings.Count(sc.Text(), `"code":`)
	}
	return n
}

// scrape reads the unlabelled samples of a Prometheus text page.
func scrape(url string) (map[string]float64, error) {
	res, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// checkGrowth compares the last fifth of the run with the fifth after the
// warm-up: goroutines, ports, dialogs and descriptors may not grow by more
// than 10% (plus 50 for the churn's own swing), RSS by more than 10%.
func (sk *soak) checkGrowth(t *testing.T, s []soakSample) {
	var after []soakSample
	for _, x := range s {
		if x.at >= sk.warmup {
			after = append(after, x)
		}
	}
	if len(after) < 10 {
		t.Logf("%d samples after the %v warm-up: too few to judge growth", len(after), sk.warmup)
		return
	}
	n := len(after) / 5
	first, last := mean(after[:n]), mean(after[len(after)-n:])
	for i, name := range soakColumns[:5] {
		slack := 50.0
		if name == "rss_mib" {
			slack = 0
		}
		t.Logf("%s: %.1f after the warm-up, %.1f at the end", name, first[i], last[i])
		if last[i] > first[i]*1.10+slack {
			t.Errorf("%s grew from %.1f to %.1f", name, first[i], last[i])
		}
	}
}

func mean(s []soakSample) []float64 {
	out := make([]float64, len(soakColumns))
	for _, x := range s {
		for i, v := range x.values() {
			out[i] += v / float64(len(s))
		}
	}
	return out
}

// plot writes soak.svg: each column scaled to its own maximum, over time.
func (sk *soak) plot(t *testing.T, s []soakSample) {
	if len(s) < 2 {
		return
	}
	const w, h, pad = 900.0, 360.0, 40.0
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h+20*float64(len(soakColumns)))
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", pad, pad/2, w-2*pad, h-pad)
	end := s[len(s)-1].at.Seconds()
	for c, name := range soakColumns {
		top := 0.0
		for _, x := range s {
			top = max(top, x.values()[c])
		}
		if top == 0 {
			top = 1
		}
		var pts []string
		for _, x := range s {
			px := pad + (w-2*pad)*x.at.Seconds()/end
			py := pad/2 + (h-pad)*(1-x.values()[c]/top)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colors[c], strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s (top of the box = %.0f)</text>`+"\n", pad, h+15+20*float64(c), colors[c], name, top)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">0 to %.0f min</text>`+"\n", w-2*pad-60, h-pad/2+15, end/60)
	b.WriteString("</svg>\n")
	if err := os.WriteFile(filepath.Join(sk.out, "soak.svg"), []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}
