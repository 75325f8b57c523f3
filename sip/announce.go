package sip

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
)

// This file is the spoken park code (SPEC §11 "Spoken code"): a parker
// whose leg is still up after the park hears "parked at <code>" on it, and
// the switch hangs the leg up when the prompt ends.

// Prompts are the phrases the switch speaks a park code with: "parked at",
// then the code digit by digit ("parked at one two" for 12), the way desk
// phone systems read codes out; digits need ten prompts for every code.
type Prompts struct {
	ParkedAt *media.Prompt
	Digits   [10]*media.Prompt // "zero" to "nine"
}

var errPrompts = errors.New("sip: Prompts needs ParkedAt and all ten digits")

func (p *Prompts) check() error {
	if p.ParkedAt == nil {
		return errPrompts
	}
	for _, d := range p.Digits {
		if d == nil {
			return errPrompts
		}
	}
	return nil
}

// say is what is played for code.
func (p *Prompts) say(code int) []*media.Prompt {
	digits := strconv.Itoa(code)
	out := make([]*media.Prompt, 0, 1+len(digits))
	out = append(out, p.ParkedAt)
	for _, d := range digits {
		if d >= '0' && d <= '9' {
			out = append(out, p.Digits[d-'0'])
		}
	}
	return out
}

// initAnnouncer prepares the prompt player when the switch speaks codes.
func (s *Switch) initAnnouncer() error {
	if s.opts.Prompts == nil {
		return nil
	}
	if err := s.opts.Prompts.check(); err != nil {
		return err
	}
	s.announcer = media.NewAnnouncer()
	return nil
}

// runAnnouncer paces every announcement until Shutdown; the clock sleeps
// while none plays.
func (s *Switch) runAnnouncer() {
	if a := s.announcer; a != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			a.Run(s.ctx)
		}()
	}
}

// Announcing is the number of parkers hearing their park code now.
func (s *Switch) Announcing() int {
	if s.announcer == nil {
		return 0
	}
	return s.announcer.Listeners()
}

// announceAndRelease ends a park for the parker's leg l, whatever parked
// the call (REFER, DTMF, attended transfer to park): when the switch speaks
// codes and the leg can hear, "parked at <code>" is played on the leg's
// own anchor, unbridged from the parked party, and the switch hangs the
// leg up once it has been said; a phone that hangs up first stops it.
// Otherwise the leg is released as without announcements: the switch
// waits up to wait for the phone's BYE (releaseParkerAfter). Either way the
// leg is gone, or being hung up, when it returns, and no later than
// ReleaseTimeout.
func (c *call) announceAndRelease(l *leg, o *park.Orbit, wait time.Duration) {
	l.ep.Unbridge()
	pb := c.startAnnouncement(l, o.Code())
	if pb == nil {
		c.releaseParkerAfter(l, wait)
		return
	}
	defer l.ep.Close()
	defer pb.Stop()
	t := time.NewTimer(c.s.opts.ReleaseTimeout)
	defer t.Stop()
	select {
	case <-pb.Done():
	case <-l.gone:
		// The phone hung up: not a packet more.
		pb.Stop()
		c.log.Debug().Int("orbit", o.Code()).Msg("parker hung up during the announcement")
		return
	case <-t.C:
		c.log.Info().Int("orbit", o.Code()).Msg("announcement cut short: it outlasts the release timeout")
	case <-c.s.ctx.Done():
		return
	}
	pb.Stop()
	l.mu.Lock()
	alive := !l.ended
	l.endLocked()
	l.mu.Unlock()
	if alive {
		c.log.Info().Int("orbit", o.Code()).Msg("parker heard the code: sending BYE")
		c.s.bye(l)
	}
}

// startAnnouncement plays "parked at <code>" on l, or returns nil when
// the switch speaks no codes or the leg cannot hear: it is over, it holds
// the call (its last SDP says sendonly or inactive: the phone said it
// will not listen), or it speaks no G.711.
func (c *call) startAnnouncement(l *leg, code int) *media.Playback {
	s := c.s
	if s.announcer == nil {
		return nil
	}
	l.mu.Lock()
	over, held := l.ended || isClosed(l.gone), l.held
	l.mu.Unlock()
	if over || held {
		c.log.Debug().Int("orbit", code).Bool("held", held).Msg("no announcement: the parker's leg cannot hear it")
		return nil
	}
	f, ok := promptFormat(l)
	if !ok {
		c.log.Info().Int("orbit", code).Msg("no announcement: the parker speaks no G.711")
		return nil
	}
	pb, err := s.announcer.Play(s.ctx, l.ep, f, s.opts.Prompts.say(code)...)
	if err != nil {
		c.log.Warn().Err(err).Int("orbit", code).Msg("announcement")
		return nil
	}
	c.log.Info().Int("orbit", code).Str("codec", f.Name).Dur("duration", pb.Duration()).Msg("announcing the park code to the parker")
	return pb
}

// promptFormat picks the codec a prompt is sent to leg l in: the rule of
// music on hold (musicFormat, the first G.711 law of the phone's SDP),
// narrowed to the laws the switch's last SDP to the leg also carries, so
// that a phone that offered both but had one answered hears that one.
func promptFormat(l *leg) (media.Format, bool) {
	l.mu.Lock()
	d, sent, sdes := l.desc, l.lastSDP, l.sdes
	l.mu.Unlock()
	ours, err := media.Parse(sent, sdes)
	if err != nil {
		return musicFormat(d)
	}
	for _, f := range d.Formats {
		if !strings.EqualFold(f.Name, "PCMU") && !strings.EqualFold(f.Name, "PCMA") {
			continue
		}
		if _, ok := ours.Format(f.Name, f.ClockRate); ok {
			return f, true
		}
	}
	return media.Format{}, false
}
