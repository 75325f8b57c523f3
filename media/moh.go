package media

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

const (
	samplesPerFrame = 160 // 20 ms at 8 kHz, one G.711 byte per sample
	frameDuration   = 20 * time.Millisecond
	rtpHeaderLen    = 12
	mohPacketLen    = rtpHeaderLen + samplesPerFrame

	// maxLag is how far behind schedule the loop may fall and still catch
	// up by sending the missed frames back to back. Beyond it (the process
	// was stopped, the machine swapped) the missed frames are skipped: a
	// burst of seconds of audio would only overflow the phones' jitter
	// buffers.
	maxLag = 5 * frameDuration
)

var (
	// ErrMusicCodec is returned by Attach for a format other than PCMU or
	// PCMA at 8000 Hz: the music is encoded to those two only.
	ErrMusicCodec = errors.New("media: music on hold is sent as PCMU/8000 or PCMA/8000 only")
	// ErrMusicAttached is returned by Attach for an endpoint that already
	// hears the music: two streams at once would garble it.
	ErrMusicAttached = errors.New("media: endpoint already hears music on hold")
)

// MusicOnHold is one looped music stream shared by every listener: encoded
// once to PCMU and PCMA 20 ms frames at start-up, paced by one clock; each
// tick every attached endpoint gets the current frame with its own RTP
// header (stable per-listener SSRC, sequence +1, timestamp +160, marker on
// the first packet).
//
// A listener attached mid-stream starts at the current frame, as a caller
// put on hold on a radio station would. The loop reads the listener list
// through an atomic pointer to an immutable slice (copy on write), so a
// tick takes no shared lock however many calls are parked, and sending
// allocates nothing.
type MusicOnHold struct {
	pcmu, pcma []byte // every frame, samplesPerFrame bytes each
	frames     int64

	listeners atomic.Pointer[[]*listener]
	mu        sync.Mutex // serialises writers of listeners
	attached  map[*Endpoint]*listener

	running atomic.Bool
	// Owned by the goroutine in Run.
	next int64   // the tick to play next; kept so a restarted Run continues
	fan  *fanout // Run's helpers, nil outside Run
	solo *fanout // no helpers: ticks driven without Run
}

// fanout splits a tick over goroutines. Nearly all of a tick is the kernel
// sending one datagram per listener (each from its endpoint's own socket,
// so they cannot be batched), and one goroutine sending for thousands of
// listeners would not fit in 20 ms on a small machine.
type fanout struct {
	jobs chan shard
	min  int            // fewest listeners per shard
	busy sync.WaitGroup // shards of the current tick
	done sync.WaitGroup // helper goroutines
	dead [][]*listener  // per shard: endpoints found closed
}

// shard is a part of one tick's listeners.
type shard struct {
	ls   []*listener
	n    int64
	off  int
	dead *[]*listener
}

// minShard is the fewest listeners worth handing to another goroutine: a
// hand-off costs about as much as a few sends.
const minShard = 256

// listener is one endpoint hearing the music.
type listener struct {
	e     *Endpoint
	audio []byte // m.pcmu or m.pcma
	pt    uint8
	ssrc  uint32

	listed bool // in m.listeners; guarded by m.mu

	// mu is held while a packet is sent, so that detach returns only once
	// no packet can follow: the caller may bridge the endpoint to the
	// retriever next, and a late music packet would reach the retriever.
	// It guards the fields below.
	mu      sync.Mutex
	gone    bool
	started bool  // from is set
	from    int64 // tick of the first visit, where ts0 applies
	last    int64 // tick of the last packet sent
	sent    bool
	seq     uint16
	ts0     uint32
	buf     [mohPacketLen]byte
}

// NewMusicOnHold encodes a WAV file (8 kHz mono 16-bit PCM) for looping. A
// last partial frame is padded with silence.
func NewMusicOnHold(wav []byte) (*MusicOnHold, error) {
	samples, err := parseWAV(wav)
	if err != nil {
		return nil, err
	}
	frames := (len(samples) + samplesPerFrame - 1) / samplesPerFrame
	m := &MusicOnHold{
		pcmu:     make([]byte, frames*samplesPerFrame),
		pcma:     make([]byte, frames*samplesPerFrame),
		frames:   int64(frames),
		attached: make(map[*Endpoint]*listener),
		solo:     &fanout{dead: make([][]*listener, 1), min: minShard},
	}
	for i := range m.pcmu {
		var s int16 // silence pads the last frame
		if i < len(samples) {
			s = samples[i]
		}
		m.pcmu[i], m.pcma[i] = linearToUlaw(s), linearToAlaw(s)
	}
	m.listeners.Store(&[]*listener{})
	return m, nil
}

// Duration is the length of the loop.
func (m *MusicOnHold) Duration() time.Duration {
	return time.Duration(m.frames) * frameDuration
}

// Listeners is the number of endpoints attached.
func (m *MusicOnHold) Listeners() int { return len(*m.listeners.Load()) }

// Attach starts sending the music to e's remote in format f, which must be
// PCMU or PCMA at 8000 Hz (the payload type is f's, as negotiated). The
// returned detach stops it; it is idempotent, safe to call concurrently
// with Run, and once it returns no further packet is sent to e. An endpoint
// closed while attached is detached on the next tick.
func (m *MusicOnHold) Attach(e *Endpoint, f Format) (detach func(), err error) {
	if e == nil {
		return nil, errors.New("media: music on hold needs an endpoint")
	}
	var audio []byte
	switch {
	case f.ClockRate != 8000 || f.PayloadType > 127 || f.Channels > 1:
		return nil, ErrMusicCodec
	case strings.EqualFold(f.Name, PCMU.Name):
		audio = m.pcmu
	case strings.EqualFold(f.Name, PCMA.Name):
		audio = m.pcma
	default:
		return nil, ErrMusicCodec
	}
	// Random SSRC, first sequence number and timestamp (RFC 3550 §5.1).
	l := &listener{
		e:     e,
		audio: audio,
		pt:    f.PayloadType,
		ssrc:  rand.Uint32(),
		seq:   uint16(rand.Uint32()),
		ts0:   rand.Uint32(),
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if e.closed.Load() {
		return nil, errors.New("media: music on hold for a closed endpoint")
	}
	if _, ok := m.attached[e]; ok {
		return nil, ErrMusicAttached
	}
	m.attached[e] = l
	l.listed = true
	// Appending may write past the end of the published slice but never
	// inside it, so the loop, which reads only up to its length, is safe.
	next := append(*m.listeners.Load(), l)
	m.listeners.Store(&next)

	var once sync.Once
	return func() { once.Do(func() { m.detach(l) }) }, nil
}

func (m *MusicOnHold) detach(l *listener) {
	l.mu.Lock()
	l.gone = true
	l.mu.Unlock()
	m.remove([]*listener{l})
}

// remove takes listeners out of the list in one copy, so that the loop
// keeps reading the old slice undisturbed.
func (m *MusicOnHold) remove(ls []*listener) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, l := range ls {
		if l.listed {
			l.listed = false
			delete(m.attached, l.e)
			n++
		}
	}
	if n == 0 {
		return
	}
	old := *m.listeners.Load()
	// Capacity for the removed ones: calls are parked and retrieved all the
	// time, and re-filling the room costs the next Attach no copy.
	next := make([]*listener, 0, len(old))
	for _, l := range old {
		if l.listed {
			next = append(next, l)
		}
	}
	m.listeners.Store(&next)
}

// Run sends the music until ctx ends. Frames are due at start + n×20 ms, an
// absolute schedule, so that timer and send latencies never accumulate into
// drift: a late tick is followed by the next one at once. Only one Run sends
// at a time; another call returns immediately. Run uses up to GOMAXPROCS
// goroutines while it sends, and none once it has returned.
func (m *MusicOnHold) Run(ctx context.Context) {
	if !m.running.CompareAndSwap(false, true) {
		return
	}
	defer m.running.Store(false)
	defer m.startFanout(runtime.GOMAXPROCS(0)-1, minShard)()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start, base := time.Now(), m.next
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * frameDuration)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			default:
			}
			i = catchUp(i, -wait)
		}
		m.tick(base + i)
		m.next = base + i + 1
	}
}

// catchUp returns the frame to play when frame i is late by late: i itself
// while the lag is small, else the frame due now, skipping the rest.
func catchUp(i int64, late time.Duration) int64 {
	if late <= maxLag {
		return i
	}
	return i + int64(late/frameDuration)
}

// startFanout starts helper goroutines for the ticks, each taking shards of
// at least perShard listeners; stop ends them.
func (m *MusicOnHold) startFanout(helpers, perShard int) (stop func()) {
	f := &fanout{jobs: make(chan shard, helpers), dead: make([][]*listener, helpers+1), min: perShard}
	for range helpers {
		f.done.Go(func() {
			for s := range f.jobs {
				sendShard(s)
				f.busy.Done()
			}
		})
	}
	m.fan = f
	return func() {
		close(f.jobs)
		f.done.Wait()
		m.fan = nil
	}
}

// tick sends frame n (of the endless stream) to every listener: the
// calling goroutine takes the first shard, helpers the others.
func (m *MusicOnHold) tick(n int64) {
	ls := *m.listeners.Load()
	off := int(n%m.frames) * samplesPerFrame
	f := m.fan
	if f == nil {
		f = m.solo
	}
	parts := max(1, min(len(f.dead), len(ls)/f.min))
	size := (len(ls) + parts - 1) / parts
	f.busy.Add(parts - 1)
	for p := 1; p < parts; p++ {
		f.jobs <- shard{ls: ls[p*size : min((p+1)*size, len(ls))], n: n, off: off, dead: &f.dead[p]}
	}
	sendShard(shard{ls: ls[:size], n: n, off: off, dead: &f.dead[0]})
	f.busy.Wait()

	for p, dead := range f.dead[:parts] {
		if len(dead) == 0 {
			continue
		}
		for _, l := range dead {
			l.mu.Lock()
			l.gone = true
			l.mu.Unlock()
		}
		m.remove(dead)
		clear(dead)
		f.dead[p] = dead[:0]
	}
}

func sendShard(s shard) {
	for _, l := range s.ls {
		if !l.send(s.n, l.audio[s.off:s.off+samplesPerFrame]) {
			*s.dead = append(*s.dead, l)
		}
	}
}

// send sends tick n's frame to one listener. It reports false if the
// endpoint is closed and the listener is to be dropped.
func (l *listener) send(n int64, payload []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return true // detach is removing it
	}
	if l.e.closed.Load() {
		return false
	}
	if !l.started {
		l.started, l.from = true, n
	}
	h := rtp.Header{
		Version:        2,
		PayloadType:    l.pt,
		SequenceNumber: l.seq,
		// The timestamp follows the clock, not the packets sent: after
		// skipped frames or a failed send it jumps by the time missed.
		Timestamp: l.ts0 + uint32(n-l.from)*samplesPerFrame,
		SSRC:      l.ssrc,
		// The marker starts a talkspurt (RFC 3551 §4.1): the first packet
		// and the first after a gap, so that the phone resyncs its jitter
		// buffer instead of stretching the gap.
		Marker: !l.sent || n != l.last+1,
	}
	if _, err := h.MarshalTo(l.buf[:rtpHeaderLen]); err != nil {
		return true // cannot happen: the header has no CSRC or extension
	}
	copy(l.buf[rtpHeaderLen:], payload)
	// A failed send (no remote yet, a transient socket error) is not a
	// packet: the sequence number counts only what went out.
	if l.e.WriteRTP(l.buf[:]) == nil {
		l.seq++
		l.last, l.sent = n, true
	}
	return true
}
