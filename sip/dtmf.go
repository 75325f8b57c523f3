package sip

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
)

// This file is DTMF park (SPEC §11): a party keying the DTMF park code
// during a bridged call parks the other party, as a REFER to the park
// address would (parkOther), and is the parker. The digits come as RFC
// 4733 events, which the leg's media endpoint watches (media.WatchDigits),
// or as SIP INFO, which info matches the same way (media.DigitMatcher).
// While the digits keyed so far are the start of the code they are
// withheld from the other party; a sequence that breaks (another digit, or
// no digit for DTMFTimeout) is passed on, the withheld digits first; the
// code itself never reaches it. Only a user whose policy allows park has
// the code: for anyone else (trunks included) every digit passes as
// before.
//
// After a DTMF park the parker's phone still has its call up, and nothing
// tells it to hang up: the switch gets the MESSAGE with the code to it and
// hangs its leg up at once (releaseDTMFParker). A refusal (park not
// allowed by a policy changed since the digits began, no free code, the
// store away) leaves the call as it was, the code's digits withheld, and
// is logged like a REFER's.

// ErrBadDTMFCode is returned by New for a DTMF park code that is not 1–8
// keys of 0-9, * and #.
var ErrBadDTMFCode = errors.New("a DTMF park code is 1 to 8 keys of 0-9, * and #")

// errTransferring refuses a DTMF park while a blind transfer rings.
var errTransferring = errors.New("a transfer is in progress")

// dtmfQueueLen bounds the DTMF parks waiting for dtmfWorker; the relay
// goroutines only ever try a send on it.
const dtmfQueueLen = 64

// maxInfoBody bounds the INFO bodies read as a DTMF digit.
const maxInfoBody = 256

// dtmfCode is the DTMF park code the phone on l may key now, "" for none:
// the switch has none, l is a trunk's, or l's policy does not allow park.
// It runs on the relay goroutine (media.DigitWatch.Code): no blocking.
func (l *leg) dtmfCode() string {
	code := l.s.numbers.Load().DTMFCode
	if code == "" || l.user == nil || !l.s.policyOf(l.user).AllowCallPark {
		return ""
	}
	return code
}

// watchDigits arms the DTMF park detector of l's endpoint for the phone on
// l. Its telephone-event payload type is the one of the SDP the switch
// last sent l, the number its peer receives events with and so the one
// the phone sends them with (RFC 3264 §5.1); before any, the phone's own.
func (l *leg) watchDigits() {
	l.mu.Lock()
	sent, fmts, own := l.lastSDP, l.sentFmts, l.desc
	l.mu.Unlock()
	pt := own.EventPayloadType()
	switch {
	case fmts != nil:
		pt = media.EventPayloadType(fmts)
	case len(sent) > 0:
		if d, err := media.Parse(sent, true); err == nil {
			pt = d.EventPayloadType()
		}
	}
	l.ep.SetEventPayloadType(pt)
	l.ep.WatchDigits(&media.DigitWatch{
		Code:    l.dtmfCode,
		OnMatch: l.dtmfKeyed,
		Timeout: l.s.opts.DTMFTimeout,
		Now:     l.s.opts.Now,
	})
}

// dtmfRetry spaces the DTMF park attempts of one leg: a phone that keys
// the code over and over while its park is refused (no free code) costs
// the store and the log one attempt a second at most.
const dtmfRetry = time.Second

// dtmfKeyed reports that the phone on l keyed the DTMF park code. It runs
// on the relay goroutine, so it only tries to queue l for dtmfWorker.
func (l *leg) dtmfKeyed() {
	now := time.Now().UnixNano()
	next := l.dtmf.next.Load()
	if now < next || !l.dtmf.next.CompareAndSwap(next, now+int64(dtmfRetry)) {
		return
	}
	select {
	case l.s.dtmfKeys <- l:
	default:
		l.s.dtmfFull.Add(1)
	}
}

// dtmfWorker parks for each leg whose phone keyed the DTMF park code, each
// park in a goroutine of its own, until the switch shuts down.
func (s *Switch) dtmfWorker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case l := <-s.dtmfKeys:
			if n := s.dtmfFull.Swap(0); n > 0 {
				s.log.Warn().Uint64("dropped", n).Msg("DTMF park codes dropped: too many keyed at once")
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				l.c.parkByDigits(l)
			}()
		}
	}
}

// parkByDigits parks the other party of l's call with l as the parker,
// the phone on l having keyed the DTMF park code.
func (c *call) parkByDigits(l *leg) {
	if isClosed(c.done) {
		return // hung up since
	}
	if c.transferring() {
		c.logDTMFRefusal(l, "", errTransferring)
		return
	}
	p, err := c.parkOther(l, 0)
	if err != nil {
		c.logDTMFRefusal(l, p.policy, err)
		return
	}
	c.log.Info().Str("leg", l.String()).Int("orbit", p.orbit.Code()).Str("policy", p.policy).Msg("DTMF park")
	c.finishPark(l, p, nil, c.releaseDTMFParker)
}

// releaseDTMFParker ends the parker's leg once a DTMF park is done (the
// parked party on music, the MESSAGE with the code sent): the parker hears
// "parked at <code>" when the switch speaks codes, and since its phone will
// not hang up by itself, the switch sends the BYE then, or at once.
func (c *call) releaseDTMFParker(l *leg, o *park.Orbit) {
	c.announceAndRelease(l, o, 0)
}

// logDTMFRefusal writes the line of a refused DTMF park, as logRefusal
// does for a REFER, with the status the REFER would have had.
func (c *call) logDTMFRefusal(l *leg, policy string, err error) {
	status, reason := dtmfRefusal(err)
	user := ""
	if l.user != nil {
		user = l.user.Name
	}
	ev := c.s.refusal("park", c.id, user, policy, 0).Str("trigger", "dtmf").Str("leg", l.String())
	if status >= 500 {
		ev = ev.Err(err)
	}
	ev.Int("status", status).Str("reason", reason).Msg("park refused")
}

// dtmfRefusal is the status and reason of a refused DTMF park.
func dtmfRefusal(err error) (int, string) {
	switch {
	case errors.Is(err, errNothingToPark):
		return sip.StatusForbidden, "nothing to park"
	case errors.Is(err, errNotAUser):
		return sip.StatusForbidden, "not a user"
	case errors.Is(err, errInvitePending):
		return sip.StatusRequestPending, "re-INVITE in progress"
	case errors.Is(err, errTransferring):
		return sip.StatusRequestPending, "a transfer is in progress"
	case errors.Is(err, errCallEnded):
		return sip.StatusCallTransactionDoesNotExists, "the call ended"
	case errors.Is(err, park.ErrNotAllowed):
		return sip.StatusForbidden, park.ReasonNotAllowed
	case errors.Is(err, park.ErrRangeFull):
		return sip.StatusServiceUnavailable, park.ReasonRangeFull
	case errors.Is(err, park.ErrUnavailable):
		return sip.StatusServiceUnavailable, park.ReasonUnavailable
	}
	return sip.StatusInternalServerError, "park failed"
}

// legDTMF is a leg's DTMF park state: the matcher of the digits its phone
// sends as INFO with the INFOs of a possible code it withholds, and when
// the next park attempt may be made.
type legDTMF struct {
	next atomic.Int64 // unix nanoseconds; see dtmfKeyed

	mu      sync.Mutex
	m       media.DigitMatcher
	held    []*sip.Request // the withheld INFOs, one per digit m holds
	waiting bool           // releaseInfosLater is running
}

// key matches digit d of req; it returns the verdict and the withheld
// INFOs to pass on now, oldest first.
func (d *legDTMF) key(k byte, req *sip.Request, code string, now time.Time, timeout time.Duration) (media.Verdict, []*sip.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.m.Key(k, code, now, timeout)
	n := min(v.Release, len(d.held))
	out := d.held[:n:n]
	d.held = append([]*sip.Request(nil), d.held[n:]...)
	switch {
	case v.Match:
		d.held = nil
	case v.Hold:
		d.held = append(d.held, req)
	}
	return v, out
}

// expire returns the withheld INFOs whose timeout has passed, and the
// deadline of those still withheld (zero: none).
func (d *legDTMF) expire(now time.Time, timeout time.Duration) ([]*sip.Request, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*sip.Request
	if d.m.Expire(now, timeout) > 0 {
		out, d.held = d.held, nil
	}
	dl := d.m.Deadline(timeout)
	if dl.IsZero() {
		d.waiting = false
	}
	return out, dl
}

// info handles an in-dialog INFO. One carrying a DTMF digit
// (application/dtmf-relay or application/dtmf) is matched against the
// DTMF park code: the digits of a possible code are answered 200 and
// withheld, the others forwarded, after any withheld ones they release.
// Every other INFO is forwarded as before.
func (c *call) info(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	k, ok := infoDigit(req)
	if !ok || c.other(l) == nil {
		c.forward(l, req, tx)
		return
	}
	s := c.s
	v, release := l.dtmf.key(k, req, l.dtmfCode(), s.opts.Now(), s.opts.DTMFTimeout)
	c.passInfos(l, release)
	switch {
	case v.Match:
		s.reply(req, tx, sip.StatusOK, "")
		l.dtmfKeyed()
	case v.Hold:
		s.reply(req, tx, sip.StatusOK, "")
		c.releaseInfosLater(l)
	default:
		c.forward(l, req, tx)
	}
}

// releaseInfosLater passes l's withheld INFOs on when they time out, in a
// goroutine of its own while there are any (one per leg at most).
func (c *call) releaseInfosLater(l *leg) {
	l.dtmf.mu.Lock()
	started := l.dtmf.waiting
	l.dtmf.waiting = true
	l.dtmf.mu.Unlock()
	if started {
		return
	}
	s := c.s
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			out, dl := l.dtmf.expire(s.opts.Now(), s.opts.DTMFTimeout)
			c.passInfos(l, out)
			if dl.IsZero() {
				return
			}
			t := time.NewTimer(dl.Sub(s.opts.Now()))
			select {
			case <-t.C:
			case <-c.done:
			case <-s.ctx.Done():
			}
			t.Stop()
			if isClosed(c.done) || s.ctx.Err() != nil {
				l.dtmf.mu.Lock()
				l.dtmf.waiting = false
				l.dtmf.mu.Unlock()
				return
			}
		}
	}()
}

// passInfos forwards withheld INFOs, already answered, to the other
// party in order, within 10 s in all (the INFO that released them waits
// for its answer meanwhile); with no other party (parked meanwhile) they
// are dropped.
func (c *call) passInfos(l *leg, reqs []*sip.Request) {
	if len(reqs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, 10*time.Second)
	defer cancel()
	for _, req := range reqs {
		peer := c.other(l)
		if peer == nil {
			return
		}
		out := peer.newRequest(sip.INFO, 0)
		copyForwardHeaders(out, req)
		out.SetBody(req.Body())
		res, err := c.s.do(ctx, out)
		if err != nil || !res.IsSuccess() {
			c.log.Debug().Err(err).Str("leg", peer.String()).Msg("withheld DTMF INFO not accepted")
		}
	}
}

// infoDigit reads the key an INFO carries: "Signal=<key>" of
// application/dtmf-relay, or the body of application/dtmf.
func infoDigit(req *sip.Request) (byte, bool) {
	ct := req.ContentType()
	if ct == nil || len(req.Body()) > maxInfoBody {
		return 0, false
	}
	mediaType, _, _ := strings.Cut(ct.Value(), ";")
	body := string(req.Body())
	switch strings.ToLower(strings.TrimSpace(mediaType)) {
	case "application/dtmf-relay":
		for line := range strings.Lines(body) {
			if k, v, ok := strings.Cut(line, "="); ok && strings.EqualFold(strings.TrimSpace(k), "Signal") {
				return signalKey(strings.TrimSpace(v))
			}
		}
	case "application/dtmf":
		return signalKey(strings.TrimSpace(body))
	}
	return 0, false
}

// signalKey is the key of a DTMF signal: 0-9, *, #, A-D (some phones send
// * and # as 10 and 11, their RFC 4733 event codes).
func signalKey(v string) (byte, bool) {
	switch {
	case v == "10":
		return '*', true
	case v == "11":
		return '#', true
	case len(v) == 1 && strings.IndexByte("0123456789*#ABCDabcd", v[0]) >= 0:
		return strings.ToUpper(v)[0], true
	}
	return 0, false
}
