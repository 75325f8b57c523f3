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

// g711Audio is a WAV encoded once to both G.711 laws, in whole 20 ms
// frames: what music on hold and prompts send, never encoded per call.
type g711Audio struct {
	pcmu, pcma []byte // every frame, samplesPerFrame bytes each
	frames     int64
}

// encodeG711 encodes a WAV file (8 kHz mono 16-bit PCM). A last partial
// frame is padded with silence.
func encodeG711(wav []byte) (g711Audio, error) {
	samples, err := parseWAV(wav)
	if err != nil {
		return g711Audio{}, err
	}
	frames := (len(samples) + samplesPerFrame - 1) / samplesPerFrame
	a := g711Audio{
		pcmu:   make([]byte, frames*samplesPerFrame),
		pcma:   make([]byte, frames*samplesPerFrame),
		frames: int64(frames),
	}
	for i := range a.pcmu {
		var s int16 // silence pads the last frame
		if i < len(samples) {
			s = samples[i]
		}
		a.pcmu[i], a.pcma[i] = linearToUlaw(s), linearToAlaw(s)
	}
	return a, nil
}

// Duration is the length of the audio.
func (a *g711Audio) Duration() time.Duration {
	return time.Duration(a.frames) * frameDuration
}

// law returns the audio encoded for f, which must be PCMU or PCMA at 8000
// Hz (any payload type number up to 127, as negotiated), or false.
func (a *g711Audio) law(f Format) ([]byte, bool) {
	switch {
	case f.ClockRate != 8000 || f.PayloadType > 127 || f.Channels > 1:
		return nil, false
	case strings.EqualFold(f.Name, PCMU.Name):
		return a.pcmu, true
	case strings.EqualFold(f.Name, PCMA.Name):
		return a.pcma, true
	}
	return nil, false
}

// pacer is the one clock behind the audio the switch generates: every 20
// ms each attached endpoint gets its next G.711 frame with its own RTP
// header (stable per-listener SSRC, sequence +1, timestamp +160, marker on
// the first packet). Music on hold and prompts each run one, so that a
// thousand listeners cost no goroutine each.
//
// The loop reads the listener list through an atomic pointer to an
// immutable slice (copy on write), so a tick takes no shared lock however
// many endpoints listen, and sending allocates nothing.
type pacer struct {
	listeners atomic.Pointer[[]*listener]
	mu        sync.Mutex // serialises writers of listeners
	attached  map[*Endpoint]*listener

	// idle stops the clock while nobody listens (prompts are rare; music
	// keeps its place in the loop by ticking on); wake restarts it.
	idle bool
	wake chan struct{}

	running atomic.Bool
	// Owned by the goroutine in Run.
	next int64   // the tick to play next; kept so a restarted Run continues
	fan  *fanout // Run's helpers, nil outside Run
	solo *fanout // no helpers: ticks driven without Run
}

func (p *pacer) init(idle bool) {
	p.attached = make(map[*Endpoint]*listener)
	p.solo = &fanout{dead: make([][]*listener, 1), min: minShard}
	p.idle = idle
	p.wake = make(chan struct{}, 1)
	p.listeners.Store(&[]*listener{})
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
	dead [][]*listener  // per shard: listeners to drop
}

// shard is a part of one tick's listeners.
type shard struct {
	ls   []*listener
	n    int64
	dead *[]*listener
}

// minShard is the fewest listeners worth handing to another goroutine: a
// hand-off costs about as much as a few sends.
const minShard = 256

// listener is one endpoint hearing generated audio: either a loop, played
// from the clock's place in it (music on hold: a caller put on hold hears
// what is playing, as on a radio station), or clips played once, in order,
// from their start (prompts).
type listener struct {
	e    *Endpoint
	pt   uint8
	ssrc uint32

	loop   []byte   // the whole loop, or nil
	frames int64    // of the loop
	clips  [][]byte // or the clips, each whole frames
	quit   <-chan struct{}
	done   chan struct{} // closed when it leaves the list; nil for a loop

	listed bool // in p.listeners; guarded by p.mu

	// mu is held while a packet is sent, so that detach returns only once
	// no packet can follow: the caller may bridge the endpoint to the
	// retriever next, and a late music packet would reach the retriever.
	// It guards the fields below.
	mu       sync.Mutex
	gone     bool
	started  bool  // from is set
	from     int64 // tick of the first visit, where ts0 applies
	last     int64 // tick of the last packet sent
	sent     bool
	seq      uint16
	ts0      uint32
	clip     int  // the clip playing
	off      int  // where in it
	finished bool // every clip was played
	buf      [mohPacketLen]byte
}

// newListener prepares e to hear audio in format f, with a random SSRC,
// first sequence number and timestamp (RFC 3550 §5.1).
func newListener(e *Endpoint, f Format) *listener {
	return &listener{e: e, pt: f.PayloadType, ssrc: rand.Uint32(), seq: uint16(rand.Uint32()), ts0: rand.Uint32()}
}

// Listeners is the number of endpoints attached.
func (p *pacer) Listeners() int { return len(*p.listeners.Load()) }

// attach adds l to the list, or fails with busy when its endpoint is
// attached already (two streams at once would garble each other).
func (p *pacer) attach(l *listener, busy error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.e.closed.Load() {
		return errors.New("media: generated audio for a closed endpoint")
	}
	if _, ok := p.attached[l.e]; ok {
		return busy
	}
	p.attached[l.e] = l
	l.listed = true
	// Appending may write past the end of the published slice but never
	// inside it, so the loop, which reads only up to its length, is safe.
	next := append(*p.listeners.Load(), l)
	p.listeners.Store(&next)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// detach stops l; once it returns no further packet is sent to l's
// endpoint.
func (p *pacer) detach(l *listener) {
	l.mu.Lock()
	l.gone = true
	l.mu.Unlock()
	p.remove([]*listener{l})
}

// remove takes listeners out of the list in one copy, so that the loop
// keeps reading the old slice undisturbed.
func (p *pacer) remove(ls []*listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range ls {
		if l.listed {
			l.listed = false
			delete(p.attached, l.e)
			if l.done != nil {
				close(l.done)
			}
			n++
		}
	}
	if n == 0 {
		return
	}
	old := *p.listeners.Load()
	// Capacity for the removed ones: calls are parked and retrieved all the
	// time, and re-filling the room costs the next attach no copy.
	next := make([]*listener, 0, len(old))
	for _, l := range old {
		if l.listed {
			next = append(next, l)
		}
	}
	p.listeners.Store(&next)
}

// Run sends the audio until ctx ends. Frames are due at start + n×20 ms,
// an absolute schedule, so that timer and send latencies never accumulate
// into drift: a late tick is followed by the next one at once. Only one
// Run sends at a time; another call returns immediately. Run uses up to
// GOMAXPROCS goroutines while it sends, and none once it has returned.
func (p *pacer) Run(ctx context.Context) {
	if !p.running.CompareAndSwap(false, true) {
		return
	}
	defer p.running.Store(false)
	defer p.startFanout(runtime.GOMAXPROCS(0)-1, minShard)()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start, base := time.Now(), p.next
	for i := int64(0); ; i++ {
		if p.idle && p.Listeners() == 0 {
			if !p.sleep(ctx) {
				return
			}
			// A new schedule from now: the first frame goes at once.
			start, base, i = time.Now(), p.next, 0
		}
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
		p.tick(base + i)
		p.next = base + i + 1
	}
}

// sleep waits for an attach, or reports false when ctx ends first.
func (p *pacer) sleep(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-p.wake:
		return true
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
func (p *pacer) startFanout(helpers, perShard int) (stop func()) {
	f := &fanout{jobs: make(chan shard, helpers), dead: make([][]*listener, helpers+1), min: perShard}
	for range helpers {
		f.done.Go(func() {
			for s := range f.jobs {
				sendShard(s)
				f.busy.Done()
			}
		})
	}
	p.fan = f
	return func() {
		close(f.jobs)
		f.done.Wait()
		p.fan = nil
	}
}

// tick sends tick n's frame to every listener: the calling goroutine takes
// the first shard, helpers the others.
func (p *pacer) tick(n int64) {
	ls := *p.listeners.Load()
	f := p.fan
	if f == nil {
		f = p.solo
	}
	parts := max(1, min(len(f.dead), len(ls)/f.min))
	size := (len(ls) + parts - 1) / parts
	f.busy.Add(parts - 1)
	for i := 1; i < parts; i++ {
		f.jobs <- shard{ls: ls[i*size : min((i+1)*size, len(ls))], n: n, dead: &f.dead[i]}
	}
	sendShard(shard{ls: ls[:size], n: n, dead: &f.dead[0]})
	f.busy.Wait()

	for i, dead := range f.dead[:parts] {
		if len(dead) == 0 {
			continue
		}
		for _, l := range dead {
			l.mu.Lock()
			l.gone = true
			l.mu.Unlock()
		}
		p.remove(dead)
		clear(dead)
		f.dead[i] = dead[:0]
	}
}

func sendShard(s shard) {
	for _, l := range s.ls {
		if !l.send(s.n) {
			*s.dead = append(*s.dead, l)
		}
	}
}

// send sends tick n's frame to one listener. It reports false when the
// listener is to be dropped: its endpoint is closed, it was told to quit,
// or its clips are over.
func (l *listener) send(n int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return true // detach is removing it
	}
	if l.e.closed.Load() {
		return false
	}
	select {
	case <-l.quit: // nil for none: never ready
		return false
	default:
	}
	payload, ok := l.frame(n)
	if !ok {
		l.finished = true
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

// frame is the payload of tick n, false once the clips are over. A loop
// plays the clock's frame; clips play on from where they were, even after
// skipped ticks, so that no word is lost to a stall.
func (l *listener) frame(n int64) ([]byte, bool) {
	if l.clips == nil {
		off := int(n%l.frames) * samplesPerFrame
		return l.loop[off : off+samplesPerFrame], true
	}
	for l.clip < len(l.clips) && l.off >= len(l.clips[l.clip]) {
		l.clip, l.off = l.clip+1, 0
	}
	if l.clip == len(l.clips) {
		return nil, false
	}
	f := l.clips[l.clip][l.off : l.off+samplesPerFrame]
	l.off += samplesPerFrame
	return f, true
}
