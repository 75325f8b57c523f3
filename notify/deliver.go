package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
)

// Headers of every POST.
const (
	HeaderSignature = "X-Parkswitch-Signature" // "sha256=" and the lower-case hex HMAC-SHA256 of the body
	HeaderEvent     = "X-Parkswitch-Event"     // the event's type
	HeaderDelivery  = "X-Parkswitch-Delivery"  // <node>-<seq>: the same on every try, for receivers to drop repeats
)

// Bounds of what is read from a receiver.
const (
	maxBodyRead = 64 << 10 // read (and dropped) so the connection can be reused
	maxBodyLog  = 200      // of it, quoted in a warning
)

// hook is one webhook at work: its queue and the worker that empties it.
type hook struct {
	n     *Notifier
	cfg   Webhook
	label string // position in notify.webhooks: the metric label
	host  string // host[:port] of the URL, all of it that is logged
	want  map[store.EventType]bool
	q     *queue
	log   zerolog.Logger

	ctx    context.Context // cancelled when a stop's flush is over: aborts the post in flight
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	dropWarn, failWarn limiter
}

func (h *hook) count(result string, n int) {
	h.n.deliveries.WithLabelValues(h.label, result).Add(float64(n))
}

// run delivers what is queued, in order, until the queue is closed and
// empty, or the hook is cancelled (what is left is counted dropped).
func (h *hook) run() {
	defer close(h.done)
	for {
		if h.ctx.Err() != nil {
			h.dropRest()
			return
		}
		e, ok, closed := h.q.pop()
		if ok {
			h.deliver(e)
			continue
		}
		if closed {
			return
		}
		select {
		case <-h.q.wake:
		case <-h.ctx.Done():
		}
	}
}

// dropRest counts what a cancelled hook still had queued.
func (h *hook) dropRest() {
	lost := 0
	for {
		if _, ok, _ := h.q.pop(); !ok {
			break
		}
		lost++
	}
	if lost > 0 {
		h.count(resultDropped, lost)
		h.log.Warn().Int("dropped", lost).Msg("webhook events not delivered before shutdown")
	}
}

// deliver posts e, trying again after a retryable failure until
// Options.Attempts tries are spent.
func (h *hook) deliver(e store.Event) {
	body, err := Body(h.cfg.Format, e, h.cfg.Username)
	if err != nil {
		h.count(resultFailed, 1)
		h.log.Error().Err(err).Str("type", string(e.Type)).Msg("webhook body not built")
		return
	}
	o := h.n.o
	for try := 1; ; try++ {
		start := time.Now()
		status, wait, err := h.post(e, body)
		if h.ctx.Err() != nil {
			h.count(resultDropped, 1) // shutdown, not the receiver's fault
			return
		}
		if err == nil {
			h.count(resultDelivered, 1)
			h.eventLog(h.log.Debug(), e).Int("status", status).Int("try", try).Dur("took", time.Since(start)).Msg("webhook delivered")
			return
		}
		retry := !errors.Is(err, ErrRefused)
		if !retry || try >= o.Attempts {
			h.count(resultFailed, 1)
			h.warnFailed(e, status, try, err)
			return
		}
		wait = max(wait, backoff(try, o.Backoff, o.MaxBackoff))
		h.eventLog(h.log.Debug(), e).Err(err).Int("status", status).Int("try", try).Dur("wait", wait).Msg("webhook not delivered: will try again")
		if !sleep(h.ctx, wait) {
			h.count(resultDropped, 1)
			return
		}
	}
}

func (h *hook) warnFailed(e store.Event, status, tries int, err error) {
	s, ok := h.failWarn.allow(h.n.o.Now())
	if !ok {
		return
	}
	ev := h.eventLog(h.log.Warn(), e).Err(err).Int("tries", tries).Int("suppressed", s)
	if status != 0 {
		ev = ev.Int("status", status)
	}
	ev.Msg("webhook not delivered: given up")
}

// eventLog adds e's fields to a log line.
func (h *hook) eventLog(ev *zerolog.Event, e store.Event) *zerolog.Event {
	ev = ev.Str("type", string(e.Type)).Str("call_id", e.CallID)
	if e.Policy != "" {
		ev = ev.Str("policy", e.Policy)
	}
	if e.Code > 0 {
		ev = ev.Int("orbit", e.Code)
	}
	return ev
}

// post makes one try: the status answered (0 when none), how long the
// receiver asked to be left alone (Retry-After, capped), and an error
// wrapping ErrUnreachable, ErrRetryLater or ErrRefused when it failed.
func (h *hook) post(e store.Event, body []byte) (int, time.Duration, error) {
	o := h.n.o
	ctx, cancel := context.WithTimeout(h.ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrRefused, stripURL(err))
	}
	hd := req.Header
	hd.Set("Content-Type", "application/json")
	hd.Set("User-Agent", "parkswitch")
	hd.Set(HeaderEvent, string(e.Type))
	hd.Set(HeaderDelivery, e.Node+"-"+strconv.FormatUint(e.Seq, 10))
	if h.cfg.Secret != "" {
		hd.Set(HeaderSignature, Sign(h.cfg.Secret, body))
	}
	res, err := h.n.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrUnreachable, stripURL(err))
	}
	defer res.Body.Close()
	head, err := readBounded(res.Body)
	if err != nil && res.StatusCode/100 == 2 {
		// The answer was cut off: the receiver may or may not have it.
		return res.StatusCode, 0, fmt.Errorf("%w: reading the answer: %w", ErrUnreachable, stripURL(err))
	}
	return res.StatusCode, retryAfter(res.Header.Get("Retry-After"), o.Now(), o.MaxBackoff), h.verdict(res, head)
}

// verdict says what an answer means: nil for 2xx, ErrRetryLater for what
// may pass later, ErrRefused for the rest.
func (h *hook) verdict(res *http.Response, head []byte) error {
	code := res.StatusCode
	switch {
	case code/100 == 2:
		// Office 365 connectors answer a throttled post 200 with this text.
		if h.cfg.Format == FormatTeams && bytes.Contains(head, []byte("HTTP error 429")) {
			return fmt.Errorf("%w: %s, throttled: %q", ErrRetryLater, res.Status, head)
		}
		return nil
	case code/100 == 3:
		return fmt.Errorf("%w: %s: redirects are not followed; configure the URL it points to", ErrRefused, res.Status)
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code/100 == 5:
		return fmt.Errorf("%w: %s %q", ErrRetryLater, res.Status, head)
	}
	return fmt.Errorf("%w: %s %q", ErrRefused, res.Status, head)
}

// readBounded reads up to maxBodyRead bytes of an answer, so the
// connection can serve the next post, and returns the first maxBodyLog of
// them, printable only.
func readBounded(r io.Reader) ([]byte, error) {
	var head bytes.Buffer
	_, err := io.Copy(&head, io.LimitReader(r, maxBodyRead))
	b := head.Bytes()
	if len(b) > maxBodyLog {
		b = b[:maxBodyLog]
	}
	return bytes.TrimSpace(bytes.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, b)), err
}

// Sign is the X-Parkswitch-Signature of body under secret:
// "sha256=<lower-case hex HMAC-SHA256>".
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is Sign(secret, body), in constant time.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// stripURL drops the URL a client error carries (*url.Error prints it
// whole, with the token in its path or query) and keeps the cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// backoff is the wait after try (1, 2, …): base doubled each try, capped,
// with equal jitter (half fixed, half random) so that webhooks failing
// together do not retry together.
func backoff(try int, base, ceiling time.Duration) time.Duration {
	d := ceiling
	if shift := try - 1; shift < 32 && base<<shift > 0 && base<<shift < ceiling {
		d = base << shift
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped
// at ceiling; 0 when absent or unreadable.
func retryAfter(v string, now time.Time, ceiling time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), ceiling)
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
