package media

import (
	"errors"
	"fmt"
	"sync"
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
// once to PCMU and PCMA 20 ms frames at start-up, paced by one clock (see
// pacer), which ticks on while nobody listens so that the loop keeps its
// place. A listener attached mid-stream starts at the current frame, as a
// caller put on hold on a radio station would.
type MusicOnHold struct {
	g711Audio
	pacer
}

// NewMusicOnHold encodes a WAV file (8 kHz mono 16-bit PCM) for looping. A
// last partial frame is padded with silence.
func NewMusicOnHold(wav []byte) (*MusicOnHold, error) {
	a, err := encodeG711(wav)
	if err != nil {
		return nil, fmt.Errorf("media: music on hold: %w", err)
	}
	m := &MusicOnHold{g711Audio: a}
	m.init(false)
	return m, nil
}

// Attach starts sending the music to e's remote in format f, which must be
// PCMU or PCMA at 8000 Hz (the payload type is f's, as negotiated). The
// returned detach stops it; it is idempotent, safe to call concurrently
// with Run, and once it returns no further packet is sent to e. An endpoint
// closed while attached is detached on the next tick.
func (m *MusicOnHold) Attach(e *Endpoint, f Format) (detach func(), err error) {
	if e == nil {
		return nil, errors.New("media: music on hold needs an endpoint")
	}
	audio, ok := m.law(f)
	if !ok {
		return nil, ErrMusicCodec
	}
	l := newListener(e, f)
	l.loop, l.frames = audio, m.frames
	if err := m.attach(l, ErrMusicAttached); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { m.detach(l) }) }, nil
}
