package media

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

// testPrompt is a prompt of frames frames whose samples are a ramp from
// start: every frame of every test prompt differs.
func testPrompt(t testing.TB, start, frames int) (*Prompt, []int16) {
	t.Helper()
	s := make([]int16, frames*samplesPerFrame)
	for i := range s {
		s[i] = int16((start+i)*5%20000 - 10000)
	}
	p, err := NewPrompt(wavFile(good, dataChunk(s)))
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// promptPhone is an endpoint playing prompts and the phone at its far end.
type promptPhone struct {
	e *Endpoint
	p *phone
	f Format
}

func newPromptPhone(t *testing.T, pool *PortPool, f Format) *promptPhone {
	t.Helper()
	pp := &promptPhone{e: openEndpoint(t, pool), p: newPhone(t), f: f}
	pp.e.SetRemote(pp.p.addr(), false)
	return pp
}

func (pp *promptPhone) receive(t *testing.T) []rtp.Packet {
	t.Helper()
	l := &listenerPhone{e: pp.e, p: pp.p, f: pp.f}
	return l.receive(t)
}

// decode is what a phone plays of a G.711 payload.
func decode(f Format, payload []byte) []int16 {
	out := make([]int16, len(payload))
	for i, c := range payload {
		if f.Name == PCMA.Name {
			out[i] = ALawToLinear(c)
		} else {
			out[i] = ULawToLinear(c)
		}
	}
	return out
}

// checkPlayed checks that pkts are one RTP stream in f carrying want: one
// SSRC, consecutive sequence numbers, timestamps 160 apart, the marker on
// the first packet only, and payloads that decode to want within G.711's
// quantisation (a step is at most 1/16 of the magnitude, plus rounding).
func checkPlayed(t *testing.T, f Format, pkts []rtp.Packet, want []int16) {
	t.Helper()
	if len(pkts)*samplesPerFrame != len(want) {
		t.Fatalf("%s: %d packets, want %d", f.Name, len(pkts), len(want)/samplesPerFrame)
	}
	p0 := pkts[0].Header
	for i, p := range pkts {
		h := p.Header
		switch {
		case h.PayloadType != f.PayloadType:
			t.Fatalf("%s packet %d: payload type %d", f.Name, i, h.PayloadType)
		case h.SSRC != p0.SSRC || h.SequenceNumber != p0.SequenceNumber+uint16(i):
			t.Fatalf("%s packet %d: SSRC %#x seq %d, first %#x %d", f.Name, i, h.SSRC, h.SequenceNumber, p0.SSRC, p0.SequenceNumber)
		case h.Timestamp != p0.Timestamp+uint32(i)*samplesPerFrame:
			t.Fatalf("%s packet %d: timestamp %d, first %d", f.Name, i, h.Timestamp, p0.Timestamp)
		case h.Marker != (i == 0):
			t.Fatalf("%s packet %d: marker %v", f.Name, i, h.Marker)
		case len(p.Payload) != samplesPerFrame:
			t.Fatalf("%s packet %d: %d-byte payload", f.Name, i, len(p.Payload))
		}
		for j, got := range decode(f, p.Payload) {
			s := want[i*samplesPerFrame+j]
			if d, tol := abs(int(got)-int(s)), abs(int(s))/16+16; d > tol {
				t.Fatalf("%s packet %d sample %d decodes to %d, the prompt has %d", f.Name, i, j, got, s)
			}
		}
	}
}

func TestNewPrompt(t *testing.T) {
	p, s := testPrompt(t, 0, 3)
	if p.frames != 3 || p.Duration() != 60*time.Millisecond {
		t.Errorf("%d frames (%v), want 3 (60ms)", p.frames, p.Duration())
	}
	for i, v := range s {
		if p.pcmu[i] != linearToUlaw(v) || p.pcma[i] != linearToAlaw(v) {
			t.Fatalf("sample %d encoded as %#02x/%#02x", i, p.pcmu[i], p.pcma[i])
		}
	}
	for _, bad := range [][]byte{nil, wavFile(fmtChunk(wavFormatPCM, 1, 16000, 16), dataChunk(s))} {
		if _, err := NewPrompt(bad); err == nil || !strings.HasPrefix(err.Error(), "media: prompt: ") {
			t.Errorf("NewPrompt of a bad file: %v, want a prompt error", err)
		}
	}
}

func TestPlayRefused(t *testing.T) {
	a := NewAnnouncer()
	pool := testPool(t, 4)
	e, busy := openEndpoint(t, pool), openEndpoint(t, pool)
	closed, err := pool.Open()
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	p, _ := testPrompt(t, 0, 2)
	playing, err := a.Play(context.Background(), busy, PCMU, p)
	if err != nil {
		t.Fatal(err)
	}
	defer playing.Stop()
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		e       *Endpoint
		f       Format
		prompts []*Prompt
		want    string
	}{
		{"no endpoint", nil, PCMU, []*Prompt{p}, "need an endpoint"},
		{"no prompt", e, PCMU, nil, "no prompt"},
		{"nil prompt", e, PCMU, []*Prompt{p, nil}, "nil prompt"},
		{"G.722", e, Format{PayloadType: 9, Name: "G722", ClockRate: 8000}, []*Prompt{p}, ErrPromptCodec.Error()},
		{"PCMU at 16 kHz", e, Format{Name: "PCMU", ClockRate: 16000}, []*Prompt{p}, ErrPromptCodec.Error()},
		{"closed endpoint", closed, PCMU, []*Prompt{p}, "closed endpoint"},
		{"already playing", busy, PCMA, []*Prompt{p}, ErrPromptPlaying.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pb, err := a.Play(ctx, tt.e, tt.f, tt.prompts...)
			if err == nil {
				pb.Stop()
				t.Fatal("Play succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Play() = %v, want %q", err, tt.want)
			}
		})
	}
	if a.Listeners() != 1 {
		t.Errorf("Listeners() = %d, want only the one playing", a.Listeners())
	}
}

// TestPlayTicks drives the clock by hand: two prompts play back to back
// in each law, from their first frame whenever the playback starts, and
// the playback ends on the tick after its last frame.
func TestPlayTicks(t *testing.T) {
	a, pool := NewAnnouncer(), testPool(t, 4)
	first, s1 := testPrompt(t, 0, 3)
	second, s2 := testPrompt(t, 777, 2)
	want := append(append([]int16(nil), s1...), s2...)
	u := newPromptPhone(t, pool, PCMU)
	al := newPromptPhone(t, pool, Format{PayloadType: 8, Name: "PCMA", ClockRate: 8000})

	a.tick(0) // nobody listens: nothing happens
	pu, err := a.Play(context.Background(), u.e, u.f, first, second)
	if err != nil {
		t.Fatal(err)
	}
	if pu.Duration() != 100*time.Millisecond {
		t.Errorf("Duration() = %v, want 100ms", pu.Duration())
	}
	a.tick(1)
	a.tick(2)
	pa, err := a.Play(context.Background(), al.e, al.f, first, second)
	if err != nil {
		t.Fatal(err)
	}
	for n := int64(3); n <= 6; n++ {
		a.tick(n)
	}
	select {
	case <-pu.Done():
	default:
		t.Fatal("PCMU playback not done on the tick after its last frame")
	}
	select {
	case <-pa.Done():
		t.Fatal("PCMA playback done before its last frame")
	default:
	}
	for n := int64(7); n <= 8; n++ {
		a.tick(n)
	}
	<-pa.Done()
	checkPlayed(t, u.f, u.receive(t), want)
	checkPlayed(t, al.f, al.receive(t), want)
	if !pu.Finished() || !pa.Finished() {
		t.Error("a playback played to its end is not Finished")
	}
	if a.Listeners() != 0 {
		t.Errorf("Listeners() = %d after both ended", a.Listeners())
	}
	pu.Stop() // harmless once done
	a.tick(9)
	if n := len(u.receive(t)); n != 0 {
		t.Errorf("%d packets after the playback ended", n)
	}
}

// TestPlayAfterStall: ticks the clock skips (a stalled process) lose no
// audio; the timestamp jumps by the time missed and the marker is set.
func TestPlayAfterStall(t *testing.T) {
	a, pool := NewAnnouncer(), testPool(t, 2)
	p, s := testPrompt(t, 0, 4)
	u := newPromptPhone(t, pool, PCMU)
	if _, err := a.Play(context.Background(), u.e, u.f, p); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{0, 1, 9, 10} {
		a.tick(n)
	}
	pkts := u.receive(t)
	if len(pkts) != 4 {
		t.Fatalf("%d packets, want 4", len(pkts))
	}
	for i, p := range pkts {
		for j, got := range decode(u.f, p.Payload) {
			if got != ULawToLinear(linearToUlaw(s[i*samplesPerFrame+j])) {
				t.Fatalf("packet %d is not frame %d of the prompt", i, i)
			}
		}
	}
	if h := pkts[2].Header; !h.Marker || h.Timestamp != pkts[1].Header.Timestamp+8*samplesPerFrame {
		t.Errorf("after the stall: marker %v, timestamp +%d", h.Marker, h.Timestamp-pkts[1].Header.Timestamp)
	}
}

// TestPlayEnds: a playback ends early on Stop (at once, no packet after),
// on its context (by the next tick) and on its endpoint's close; none of
// these is Finished.
func TestPlayEnds(t *testing.T) {
	p, _ := testPrompt(t, 0, 50)
	for _, tt := range []struct {
		name string
		end  func(pb *Playback, e *Endpoint, cancel context.CancelFunc)
	}{
		{"Stop", func(pb *Playback, _ *Endpoint, _ context.CancelFunc) {
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(pb.Stop)
			}
			wg.Wait()
		}},
		{"context", func(_ *Playback, _ *Endpoint, cancel context.CancelFunc) { cancel() }},
		{"endpoint closed", func(_ *Playback, e *Endpoint, _ context.CancelFunc) { e.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, pool := NewAnnouncer(), testPool(t, 2)
			u := newPromptPhone(t, pool, PCMU)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pb, err := a.Play(ctx, u.e, u.f, p)
			if err != nil {
				t.Fatal(err)
			}
			a.tick(0)
			a.tick(1)
			tt.end(pb, u.e, cancel)
			a.tick(2)
			select {
			case <-pb.Done():
			default:
				t.Fatal("not done on the tick after it was ended")
			}
			a.tick(3)
			if n := len(u.receive(t)); n != 2 {
				t.Errorf("%d packets, want the 2 sent before the end", n)
			}
			if pb.Finished() || a.Listeners() != 0 {
				t.Errorf("Finished() = %v, Listeners() = %d after an early end", pb.Finished(), a.Listeners())
			}
		})
	}
}

// TestPlayRun plays a 200 ms prompt in real time: it takes 200 ms, one
// packet per 20 ms, and the clock stops once nothing plays.
func TestPlayRun(t *testing.T) {
	a, pool := NewAnnouncer(), testPool(t, 2)
	p, s := testPrompt(t, 0, 10)
	u := newPromptPhone(t, pool, PCMU)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // Run and its helpers end
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	time.Sleep(10 * frameDuration) // idle: nothing to tick for
	start := time.Now()
	pb, err := a.Play(context.Background(), u.e, u.f, p)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-pb.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the playback did not end")
	}
	elapsed := time.Since(start)
	// Ten frames at 0, 20, …, 180 ms; done on the tick at 200 ms.
	if elapsed < 190*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("a 200 ms prompt took %v", elapsed)
	}
	checkPlayed(t, u.f, u.receive(t), s)
	if !pb.Finished() {
		t.Error("not Finished")
	}
	time.Sleep(10 * frameDuration) // idle again
	cancel()
	wg.Wait()
	// Ten frames and the tick that ends the playback, none while idle (20
	// more): a stall may skip a few ticks, never add one.
	if a.next < 11 || a.next >= 20 {
		t.Errorf("the announcer ticked %d times for a 10-frame prompt", a.next)
	}
}

// TestPlayTickAllocs: a tick of playing prompts allocates nothing.
func TestPlayTickAllocs(t *testing.T) {
	const n = 4
	a, pool, sink := NewAnnouncer(), testPool(t, n), newPhone(t).addr()
	long, _ := testPrompt(t, 0, 500)
	for i := range n {
		e := openEndpoint(t, pool)
		e.SetRemote(sink, false)
		pb, err := a.Play(context.Background(), e, [2]Format{PCMU, PCMA}[i%2], long, long)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pb.Stop)
	}
	tick := int64(0)
	if allocs := testing.AllocsPerRun(200, func() {
		a.tick(tick)
		tick++
	}); allocs != 0 {
		t.Errorf("a tick allocates %v times", allocs)
	}
}

// TestSRTPPrompt: prompts reach an SRTP leg encrypted under its key.
func TestSRTPPrompt(t *testing.T) {
	a, pool := NewAnnouncer(), testPool(t, 2)
	p, s := testPrompt(t, 0, 3)
	e, ph := openEndpoint(t, pool), newPhone(t)
	e.SetRemote(ph.addr(), false)
	far, keys := newSRTPPeer(t)
	setSRTP(t, e, keys)
	pb, err := a.Play(context.Background(), e, PCMA, p)
	if err != nil {
		t.Fatal(err)
	}
	for n := range int64(4) {
		a.tick(n)
	}
	<-pb.Done()
	var pkts []rtp.Packet
	for range 3 {
		enc, _ := recv(t, ph.rtp)
		if len(enc) != mohPacketLen+authTagLen {
			t.Fatalf("SRTP prompt packet of %d bytes", len(enc))
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(far.open(t, enc)); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
	checkPlayed(t, PCMA, pkts, s)
}

// TestPlayManyCostsNoGoroutine: hundreds of playbacks at once run on the
// announcer's own goroutines, none of their own, and all end.
func TestPlayManyCostsNoGoroutine(t *testing.T) {
	const n = 300
	a, pool, sink := NewAnnouncer(), testPool(t, n), newPhone(t).addr()
	p, _ := testPrompt(t, 0, 5)
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = openEndpoint(t, pool)
		eps[i].SetRemote(sink, false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { a.Run(ctx) })
	// A first playback: the announcer and its helpers are running.
	warm, err := a.Play(context.Background(), eps[0], PCMU, p)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-warm.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the first playback did not end")
	}
	before := runtime.NumGoroutine()
	pbs := make([]*Playback, n)
	for i, e := range eps {
		var err error
		if pbs[i], err = a.Play(context.Background(), e, PCMU, p); err != nil {
			t.Fatal(err)
		}
	}
	if during := runtime.NumGoroutine(); during > before {
		t.Errorf("%d playbacks started %d goroutines", n, during-before)
	}
	for i, pb := range pbs {
		select {
		case <-pb.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("playback %d did not end", i)
		}
		want := uint64(5)
		if i == 0 {
			want += 5 // the first playback's
		}
		if s := eps[i].Stats(); !pb.Finished() || s.PacketsOut != want {
			t.Fatalf("playback %d: finished %v, %d packets, want %d", i, pb.Finished(), s.PacketsOut, want)
		}
	}
}
