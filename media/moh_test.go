package media

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

// testMusic is a loop of 50 frames (one second) whose frames all differ, so
// that a test can tell which frame a packet carries.
func testMusic(t testing.TB) *MusicOnHold {
	t.Helper()
	m, err := NewMusicOnHold(wavFile(good, dataChunk(ramp(50*samplesPerFrame))))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// frameOf returns which frame of audio a payload is, or -1.
func frameOf(audio, payload []byte) int {
	for i := 0; i+samplesPerFrame <= len(audio); i += samplesPerFrame {
		if bytes.Equal(audio[i:i+samplesPerFrame], payload) {
			return i / samplesPerFrame
		}
	}
	return -1
}

func TestNewMusicOnHold(t *testing.T) {
	for _, tt := range []struct {
		name    string
		samples int
		frames  int64
	}{
		{"whole frames", 3 * samplesPerFrame, 3},
		{"last frame padded", 3*samplesPerFrame + 1, 4},
		{"one frame", samplesPerFrame, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMusicOnHold(wavFile(good, dataChunk(ramp(tt.samples))))
			if err != nil {
				t.Fatal(err)
			}
			if m.frames != tt.frames || m.Duration() != time.Duration(tt.frames)*frameDuration {
				t.Fatalf("%d frames (%v), want %d", m.frames, m.Duration(), tt.frames)
			}
			for i, s := range ramp(tt.samples) {
				if m.pcmu[i] != linearToUlaw(s) || m.pcma[i] != linearToAlaw(s) {
					t.Fatalf("sample %d encoded as %#02x/%#02x", i, m.pcmu[i], m.pcma[i])
				}
			}
			// Silence (0xff in µ-law, 0xd5 in A-law) fills the last frame.
			for i := tt.samples; i < len(m.pcmu); i++ {
				if m.pcmu[i] != 0xff || m.pcma[i] != 0xd5 {
					t.Fatalf("padding at %d is %#02x/%#02x, not silence", i, m.pcmu[i], m.pcma[i])
				}
			}
		})
	}
	if _, err := NewMusicOnHold([]byte("not a wav")); err == nil {
		t.Error("NewMusicOnHold accepted a file that is not WAV")
	}
}

func TestMusicAttach(t *testing.T) {
	m := testMusic(t)
	pool := testPool(t, 4)
	e := openEndpoint(t, pool)
	closed, err := pool.Open()
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()

	for _, tt := range []struct {
		name string
		e    *Endpoint
		f    Format
		want error // nil: attached
	}{
		{"PCMU", e, PCMU, nil},
		{"PCMA", e, PCMA, nil},
		{"lower case, dynamic payload type", e, Format{PayloadType: 96, Name: "pcmu", ClockRate: 8000}, nil},
		{"one channel written", e, Format{PayloadType: 8, Name: "PCMA", ClockRate: 8000, Channels: 1}, nil},
		{"G.722", e, Format{PayloadType: 9, Name: "G722", ClockRate: 8000}, ErrMusicCodec},
		{"telephone-event", e, TelephoneEvent, ErrMusicCodec},
		{"PCMU at 16 kHz", e, Format{PayloadType: 0, Name: "PCMU", ClockRate: 16000}, ErrMusicCodec},
		{"stereo PCMA", e, Format{PayloadType: 8, Name: "PCMA", ClockRate: 8000, Channels: 2}, ErrMusicCodec},
		{"payload type over 127", e, Format{PayloadType: 200, Name: "PCMU", ClockRate: 8000}, ErrMusicCodec},
		{"no endpoint", nil, PCMU, errors.New("needs an endpoint")},
		{"closed endpoint", closed, PCMU, errors.New("closed endpoint")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			detach, err := m.Attach(tt.e, tt.f)
			switch {
			case tt.want == nil && err != nil:
				t.Fatal(err)
			case tt.want == nil:
				if m.Listeners() != 1 {
					t.Errorf("Listeners() = %d after Attach, want 1", m.Listeners())
				}
				if _, err := m.Attach(tt.e, PCMU); !errors.Is(err, ErrMusicAttached) {
					t.Errorf("second Attach of the endpoint: %v, want ErrMusicAttached", err)
				}
				detach()
				detach() // idempotent
				if m.Listeners() != 0 {
					t.Errorf("Listeners() = %d after detach, want 0", m.Listeners())
				}
			case err == nil:
				detach()
				t.Fatalf("Attach(%v) succeeded, want %v", tt.f, tt.want)
			case !errors.Is(err, tt.want) && !strings.Contains(err.Error(), tt.want.Error()):
				t.Fatalf("Attach(%v) = %v, want %v", tt.f, err, tt.want)
			}
		})
	}
}

// listenerPhone is an endpoint hearing the music and the phone at its far
// end.
type listenerPhone struct {
	e      *Endpoint
	p      *phone
	f      Format
	audio  []byte
	detach func()
}

func attachPhone(t *testing.T, m *MusicOnHold, pool *PortPool, f Format) *listenerPhone {
	t.Helper()
	l := &listenerPhone{e: openEndpoint(t, pool), p: newPhone(t), f: f, audio: m.pcmu}
	if f.Name == PCMA.Name {
		l.audio = m.pcma
	}
	l.e.SetRemote(l.p.addr(), false)
	var err error
	if l.detach, err = m.Attach(l.e, f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.detach)
	return l
}

// receive reads what has arrived at the phone until the line is quiet.
func (l *listenerPhone) receive(t *testing.T) []rtp.Packet {
	t.Helper()
	var pkts []rtp.Packet
	buf := make([]byte, 2048)
	for {
		l.p.rtp.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := l.p.rtp.ReadFromUDPAddrPort(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		if from != l.e.Addr() {
			t.Fatalf("music from %v, want the endpoint %v", from, l.e.Addr())
		}
		var p rtp.Packet
		if err := p.Unmarshal(bytes.Clone(buf[:n])); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
}

// checkStream checks a listener's packets: its payload type, one SSRC,
// consecutive sequence numbers and frames, timestamps 160 apart, the marker
// on the first packet only. It returns the frame of the first packet.
func checkStream(t *testing.T, l *listenerPhone, pkts []rtp.Packet) int {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatalf("%s: no packets", l.f.Name)
	}
	first := frameOf(l.audio, pkts[0].Payload)
	for i, p := range pkts {
		h, p0 := p.Header, pkts[0].Header
		switch {
		case h.Version != 2 || h.Padding || h.Extension || len(h.CSRC) != 0:
			t.Fatalf("%s packet %d: header %+v", l.f.Name, i, h)
		case h.PayloadType != l.f.PayloadType:
			t.Fatalf("%s packet %d: payload type %d, want %d", l.f.Name, i, h.PayloadType, l.f.PayloadType)
		case len(p.Payload) != samplesPerFrame:
			t.Fatalf("%s packet %d: %d-byte payload, want %d", l.f.Name, i, len(p.Payload), samplesPerFrame)
		case h.SSRC != p0.SSRC:
			t.Fatalf("%s packet %d: SSRC %#x, first was %#x", l.f.Name, i, h.SSRC, p0.SSRC)
		case h.SequenceNumber != p0.SequenceNumber+uint16(i):
			t.Fatalf("%s packet %d: sequence number %d, first was %d", l.f.Name, i, h.SequenceNumber, p0.SequenceNumber)
		case h.Timestamp != p0.Timestamp+uint32(i)*samplesPerFrame:
			t.Fatalf("%s packet %d: timestamp %d, first was %d", l.f.Name, i, h.Timestamp, p0.Timestamp)
		case h.Marker != (i == 0):
			t.Fatalf("%s packet %d: marker %v", l.f.Name, i, h.Marker)
		}
		if got, want := frameOf(l.audio, p.Payload), (first+i)%50; got != want {
			t.Fatalf("%s packet %d: frame %d, want %d (the next one)", l.f.Name, i, got, want)
		}
	}
	return first
}

// TestMusicStream plays the music in real time to a PCMU and a PCMA phone
// over UDP for about 300 ms.
func TestMusicStream(t *testing.T) {
	m, pool := testMusic(t), testPool(t, 4)
	phones := []*listenerPhone{
		attachPhone(t, m, pool, PCMU),
		attachPhone(t, m, pool, Format{PayloadType: 8, Name: "PCMA", ClockRate: 8000}),
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		m.Run(ctx)
		close(done)
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	elapsed := time.Since(start)

	// Frame 0 is sent at once, then one every 20 ms.
	want := int(elapsed/frameDuration) + 1
	for _, l := range phones {
		pkts := l.receive(t)
		t.Logf("%s: %d packets in %v", l.f.Name, len(pkts), elapsed.Round(time.Millisecond))
		if len(pkts) < want-2 || len(pkts) > want+1 {
			t.Errorf("%s: %d packets in %v, want about %d", l.f.Name, len(pkts), elapsed.Round(time.Millisecond), want)
		}
		if first := checkStream(t, l, pkts); first != 0 {
			t.Errorf("%s: first packet carries frame %d, want 0", l.f.Name, first)
		}
		if s := l.e.Stats(); s.PacketsOut != uint64(len(pkts)) {
			t.Errorf("%s: endpoint counted %d packets out, phone got %d", l.f.Name, s.PacketsOut, len(pkts))
		}
	}
}

// TestMusicTicks drives the clock by hand: a listener attached mid-stream
// starts at the current frame; after a gap the timestamp keeps time and the
// marker is set again.
func TestMusicTicks(t *testing.T) {
	m, pool := testMusic(t), testPool(t, 4)
	a := attachPhone(t, m, pool, PCMU)
	for n := range int64(7) {
		m.tick(n)
	}
	b := attachPhone(t, m, pool, PCMA)
	for n := int64(7); n < 55; n++ { // round the end of the loop
		m.tick(n)
	}
	if first := checkStream(t, a, a.receive(t)); first != 0 {
		t.Errorf("first listener started at frame %d, want 0", first)
	}
	pb := b.receive(t)
	if first := checkStream(t, b, pb); first != 7 {
		t.Errorf("listener attached at tick 7 started at frame %d", first)
	}

	// Frames 55-59 are skipped, as after a stall.
	m.tick(60)
	m.tick(61)
	gap := b.receive(t)
	last := pb[len(pb)-1].Header
	for i, p := range gap {
		h := p.Header
		if h.SequenceNumber != last.SequenceNumber+uint16(i+1) {
			t.Errorf("after the gap, packet %d: sequence number %d, want %d", i, h.SequenceNumber, last.SequenceNumber+uint16(i+1))
		}
		if want := last.Timestamp + uint32(6+i)*samplesPerFrame; h.Timestamp != want {
			t.Errorf("after the gap, packet %d: timestamp %d, want %d", i, h.Timestamp, want)
		}
		if h.Marker != (i == 0) {
			t.Errorf("after the gap, packet %d: marker %v", i, h.Marker)
		}
		if f := frameOf(b.audio, p.Payload); f != 10+i {
			t.Errorf("after the gap, packet %d: frame %d, want %d", i, f, 10+i)
		}
	}
	if len(gap) != 2 {
		t.Errorf("%d packets after the gap, want 2", len(gap))
	}
}

// TestMusicNoRemote: a listener whose remote is not known yet is skipped
// without using up sequence numbers; its first packet carries the marker.
func TestMusicNoRemote(t *testing.T) {
	m, pool := testMusic(t), testPool(t, 2)
	l := &listenerPhone{e: openEndpoint(t, pool), p: newPhone(t), f: PCMU, audio: m.pcmu}
	detach, err := m.Attach(l.e, PCMU)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	m.tick(0)
	m.tick(1)
	l.e.SetRemote(l.p.addr(), false)
	m.tick(2)
	m.tick(3)
	pkts := l.receive(t)
	if first := checkStream(t, l, pkts); first != 2 || len(pkts) != 2 {
		t.Errorf("%d packets from frame %d, want 2 from frame 2", len(pkts), first)
	}
}

// TestMusicDetach: once detach returns no packet follows, even with the
// loop running and detach racing it.
func TestMusicDetach(t *testing.T) {
	m, pool := testMusic(t), testPool(t, 4)
	l := attachPhone(t, m, pool, PCMU)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	waitFor(t, "music", func() bool { return l.e.Stats().PacketsOut >= 3 })
	var detaching sync.WaitGroup
	for range 3 {
		detaching.Go(l.detach)
	}
	detaching.Wait()
	sent := l.e.Stats().PacketsOut
	time.Sleep(5 * frameDuration)
	if got := l.e.Stats().PacketsOut; got != sent {
		t.Errorf("%d packets sent after detach returned", got-sent)
	}
	if m.Listeners() != 0 {
		t.Errorf("Listeners() = %d after detach", m.Listeners())
	}
}

// TestMusicClosedEndpoint: an endpoint closed without detaching leaves the
// list on the next tick, and detaching it later is harmless.
func TestMusicClosedEndpoint(t *testing.T) {
	m, pool := testMusic(t), testPool(t, 4)
	a, b := attachPhone(t, m, pool, PCMU), attachPhone(t, m, pool, PCMA)
	m.tick(0)
	a.e.Close()
	m.tick(1)
	if m.Listeners() != 1 {
		t.Fatalf("Listeners() = %d, want 1", m.Listeners())
	}
	a.detach()
	if n := len(b.receive(t)); n != 2 {
		t.Errorf("the other listener got %d packets, want 2", n)
	}
	// The endpoint may be attached again once detached.
	if _, err := m.Attach(b.e, PCMU); !errors.Is(err, ErrMusicAttached) {
		t.Errorf("Attach of an attached endpoint: %v", err)
	}
	b.detach()
	detach, err := m.Attach(b.e, PCMU)
	if err != nil {
		t.Fatal(err)
	}
	detach()
}

// TestMusicShards spreads a tick over three goroutines and drops closed
// endpoints found by any of them.
func TestMusicShards(t *testing.T) {
	const n, perShard = 9, 3
	m, pool, sink := testMusic(t), testPool(t, n), newPhone(t).addr()
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = openEndpoint(t, pool)
		eps[i].SetRemote(sink, false)
		if _, err := m.Attach(eps[i], PCMU); err != nil {
			t.Fatal(err)
		}
	}
	stop := m.startFanout(2, perShard)
	defer stop()
	m.tick(0)
	eps[0].Close()
	eps[n-1].Close()
	m.tick(1)
	m.tick(2)
	if got := m.Listeners(); got != n-2 {
		t.Errorf("Listeners() = %d, want %d", got, n-2)
	}
	for i, e := range eps[1 : n-1] {
		if got := e.Stats().PacketsOut; got != 3 {
			t.Fatalf("endpoint %d sent %d packets, want 3", i+1, got)
		}
	}
}

// TestMusicTickAllocs: a tick allocates nothing, with or without helper
// goroutines, however many packets it sends.
func TestMusicTickAllocs(t *testing.T) {
	const n = 6
	m, pool, sink := testMusic(t), testPool(t, n), newPhone(t).addr()
	for i := range n {
		e := openEndpoint(t, pool)
		e.SetRemote(sink, false)
		detach, err := m.Attach(e, [2]Format{PCMU, PCMA}[i%2])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(detach)
	}
	for _, helpers := range []int{0, 2} {
		stop := m.startFanout(helpers, 2)
		tick := int64(0)
		if allocs := testing.AllocsPerRun(200, func() {
			m.tick(tick)
			tick++
		}); allocs != 0 {
			t.Errorf("with %d helpers a tick allocates %v times", helpers, allocs)
		}
		stop()
	}
}

func TestMusicRunStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := testMusic(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	time.Sleep(3 * frameDuration)

	// Only one loop sends: a second Run returns at once.
	second := make(chan struct{})
	go func() {
		m.Run(context.Background())
		close(second)
	}()
	select {
	case <-second:
	case <-time.After(time.Second):
		t.Fatal("a second Run did not return")
	}

	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// A cancelled context stops Run before it sends anything.
	next := m.next
	m.Run(ctx)
	if m.next != next {
		t.Errorf("Run with an ended context played ticks %d to %d", next, m.next)
	}
}

func TestCatchUp(t *testing.T) {
	for _, tt := range []struct {
		name string
		i    int64
		late time.Duration
		want int64
	}{
		{"on time", 10, 0, 10},
		{"a little late: catch up", 10, 30 * time.Millisecond, 10},
		{"at the limit: catch up", 10, maxLag, 10},
		{"stalled: skip to now", 10, maxLag + time.Millisecond, 15},
		{"stalled long", 10, 2 * time.Second, 110},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := catchUp(tt.i, tt.late); got != tt.want {
				t.Errorf("catchUp(%d, %v) = %d, want %d", tt.i, tt.late, got, tt.want)
			}
		})
	}
}
