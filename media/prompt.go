package media

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

var (
	// ErrPromptCodec is returned by Play for a format other than PCMU or
	// PCMA at 8000 Hz: prompts are encoded to those two only.
	ErrPromptCodec = errors.New("media: prompts are sent as PCMU/8000 or PCMA/8000 only")
	// ErrPromptPlaying is returned by Play for an endpoint that is already
	// playing prompts.
	ErrPromptPlaying = errors.New("media: endpoint is already playing prompts")
)

// Prompt is one recorded phrase ("parked at", a digit), encoded once to
// PCMU and PCMA 20 ms frames when it is loaded.
type Prompt struct {
	g711Audio
}

// NewPrompt encodes a WAV file (8 kHz mono 16-bit PCM). A last partial
// frame is padded with silence.
func NewPrompt(wav []byte) (*Prompt, error) {
	a, err := encodeG711(wav)
	if err != nil {
		return nil, fmt.Errorf("media: prompt: %w", err)
	}
	return &Prompt{g711Audio: a}, nil
}

// Announcer plays sequences of prompts onto endpoints, every playback
// paced by one clock (see pacer): a playback costs no goroutine, so a
// thousand at once cost what one does, and the clock stops while nothing
// plays.
type Announcer struct {
	pacer
}

// NewAnnouncer returns an announcer; Run paces it.
func NewAnnouncer() *Announcer {
	a := &Announcer{}
	a.init(true)
	return a
}

// Playback is one sequence of prompts playing on an endpoint.
type Playback struct {
	a        *Announcer
	l        *listener
	duration int64 // frames
	once     sync.Once
}

// Play starts sending prompts, one after the other, to e's remote in
// format f, which must be PCMU or PCMA at 8000 Hz (the payload type is
// f's, as negotiated; on an SRTP endpoint the packets are encrypted). The
// packets have their own SSRC, sequence numbers and timestamps, the marker
// on the first. The playback ends, and Done is closed, once every frame
// has gone out (within 20 ms of the last one), or on Stop, or when ctx
// ends or e is closed (by the next tick).
func (a *Announcer) Play(ctx context.Context, e *Endpoint, f Format, prompts ...*Prompt) (*Playback, error) {
	if e == nil {
		return nil, errors.New("media: prompts need an endpoint")
	}
	if len(prompts) == 0 {
		return nil, errors.New("media: no prompt to play")
	}
	l := newListener(e, f)
	l.clips = make([][]byte, len(prompts))
	pb := &Playback{a: a, l: l}
	for i, p := range prompts {
		if p == nil {
			return nil, errors.New("media: a nil prompt")
		}
		audio, ok := p.law(f)
		if !ok {
			return nil, ErrPromptCodec
		}
		l.clips[i] = audio
		pb.duration += p.frames
	}
	l.quit = ctx.Done()
	l.done = make(chan struct{})
	if err := a.attach(l, ErrPromptPlaying); err != nil {
		return nil, err
	}
	return pb, nil
}

// Done is closed when the playback has ended, however it ended.
func (pb *Playback) Done() <-chan struct{} { return pb.l.done }

// Stop ends the playback. It is idempotent and safe to call concurrently
// with Run; once it returns, no further packet is sent and Done is closed.
func (pb *Playback) Stop() { pb.once.Do(func() { pb.a.detach(pb.l) }) }

// Finished reports whether every frame was played: the playback was not
// cut short by Stop, its context or the endpoint's close. It is final once
// Done is closed.
func (pb *Playback) Finished() bool {
	pb.l.mu.Lock()
	defer pb.l.mu.Unlock()
	return pb.l.finished
}

// Duration is how long the prompts take to play.
func (pb *Playback) Duration() time.Duration { return time.Duration(pb.duration) * frameDuration }
