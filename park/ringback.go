package park

import (
	"context"
	"time"
)

// Ringer is how the lot reaches SIP when an orbit's deadline passes.
type Ringer interface {
	// Ring calls target (a user name) on behalf of orbit o for up to d, with
	// the parked party's caller ID and the display name "Parked <code>".
	// When the target answers, Ring calls claim: true means the answerer
	// takes the parked call (Ring connects them and returns Answered); false
	// means the orbit was claimed meanwhile (Ring hangs up the answering leg
	// and returns Lost). Ring returns NoAnswer when nobody answered within d
	// or the target cannot be reached, and must return promptly with
	// Cancelled when ctx is cancelled (a retrieve won, the parked party hung
	// up, or the lot is closing). claim does not cancel ctx.
	Ring(ctx context.Context, o *Orbit, target string, d time.Duration, claim func() bool) RingResult
	// Abandon disconnects the parked party after max_ringbacks unanswered
	// cycles; the orbit is already final (StateAbandoned).
	Abandon(o *Orbit)
}

// RingResult is how a Ring call ended.
type RingResult int

const (
	NoAnswer  RingResult = iota // nobody answered in time, or the target is unreachable
	Answered                    // the target answered and won the claim
	Lost                        // the target answered but the orbit was claimed first
	Cancelled                   // ctx was cancelled
)

func (r RingResult) String() string {
	switch r {
	case NoAnswer:
		return "no answer"
	case Answered:
		return "answered"
	case Lost:
		return "lost"
	case Cancelled:
		return "cancelled"
	}
	return "unknown"
}

// deadline runs when the park timeout of o's cycle gen has passed: the orbit
// starts ringing back in a goroutine owned by the lot.
func (l *Lot) deadline(o *Orbit, gen int) {
	defer l.wg.Done()
	l.mu.Lock()
	defer l.unlock()
	if l.closed || o.state != StateParked || o.gen != gen {
		return // stopped too late to prevent the call: nothing to do
	}
	o.timer = nil
	o.state = StateRinging
	l.sync(o)
	ctx, cancel := context.WithCancel(l.base)
	o.cancel = cancel
	l.wg.Add(1)
	go l.ringback(ctx, cancel, o, l.cfg)
}

// ringback runs one ringback cycle of o: the parker, then the fallback; if
// neither answers, the orbit is parked again or, after cfg.MaxRingbacks
// unanswered cycles, abandoned. Whatever claims the orbit meanwhile (an
// answer, a retrieve, a hang-up) ends the cycle.
func (l *Lot) ringback(ctx context.Context, cancel context.CancelFunc, o *Orbit, cfg Config) {
	defer l.wg.Done()
	defer cancel()
	steps := [...]struct {
		kind   EventKind
		target string
	}{{EventRingback, o.parker.User}, {EventFallback, cfg.Fallback}}
	var last string
	for _, s := range steps {
		if s.target == "" {
			continue
		}
		l.mu.Lock()
		if !l.stillRinging(o) {
			l.unlock()
			return
		}
		o.attempt++
		attempt := o.attempt
		l.emit(o.event(s.kind, s.target))
		l.unlock()
		target := s.target
		l.ringer.Ring(ctx, o, target, cfg.Ringback, func() bool { return l.claim(o, attempt, target) })
		last = target
	}

	// The lot trusts the claims, not the results: an orbit still ringing was
	// answered by nobody, whatever Ring returned.
	l.mu.Lock()
	if !l.stillRinging(o) {
		l.unlock()
		return
	}
	o.cancel = nil
	o.ringbacks++
	l.emit(o.event(EventRingbackUnanswered, last))
	if o.ringbacks < cfg.MaxRingbacks {
		o.state = StateParked
		o.ringbackAt = l.clock.Now().Add(o.timeout)
		l.schedule(o, o.timeout)
		l.sync(o)
		l.emit(o.event(EventRepark, ""))
		l.unlock()
		return
	}
	l.end(o, StateAbandoned)
	l.emit(o.event(EventAbandon, ""))
	l.unlock()
	l.ringer.Abandon(o)
}

// stillRinging reports whether the cycle of o goes on; it needs l.mu. A
// cycle cut short by Close leaves the orbit parked without a deadline.
func (l *Lot) stillRinging(o *Orbit) bool {
	if o.state != StateRinging {
		return false
	}
	if l.closed {
		o.state = StateParked
		o.cancel = nil
		l.sync(o)
		return false
	}
	return true
}

// claim is the answerer's bid for o, made by Ring call number attempt: it
// wins when the orbit is still ringing on that call.
func (l *Lot) claim(o *Orbit, attempt int, target string) bool {
	l.mu.Lock()
	defer l.unlock()
	if l.closed || o.state != StateRinging || o.attempt != attempt {
		return false
	}
	o.cancel = nil // Ring still needs ctx to connect the answerer; ringback cancels it after
	l.end(o, StateAnswered)
	l.emit(o.event(EventRingbackAnswered, target))
	return true
}
