package sip

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds on what the SIP stack may log about peers' input (SPEC §13).
const (
	stackLogLinesPerSecond = 10
	stackLogMaxInput       = 200 // bytes of a logged value taken from the wire
)

// logLimiter allows burst lines per window and counts the rest.
type logLimiter struct {
	every time.Duration
	burst int

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be written now, with the number of
// lines suppressed since the last one allowed.
func (l *logLimiter) allow(now time.Time) (suppressed int, ok bool) {
	return l.take(now, 1)
}

// take is allow for a line that needs a summary line beside it when lines
// were suppressed: both fit in the window or neither is written.
func (l *logLimiter) take(now time.Time, lines int) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.every {
		l.start, l.n = now, 0
	}
	if l.suppressed > 0 {
		lines++
	}
	if l.n+lines > l.burst {
		l.suppressed++
		return 0, false
	}
	l.n += lines
	s := l.suppressed
	l.suppressed = 0
	return s, true
}

// flush reports lines suppressed in an earlier window that no later line
// has reported yet, counting the summary against the current window.
func (l *logLimiter) flush(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed == 0 || now.Sub(l.start) < l.every {
		return 0
	}
	l.start, l.n = now, 1
	s := l.suppressed
	l.suppressed = 0
	return s
}

// stackLogHandler bounds the SIP stack's logs. sipgo logs every
// unparsable datagram or stream with the whole payload ("failed to parse",
// data=<up to 64 KiB>), and its error texts quote the input too; a flood
// of garbage would fill the disk and write credentials into the log. So
// every record is rate limited (stackLogLinesPerSecond, then one
// "suppressed" summary), and each string value is cut to
// stackLogMaxInput bytes after Authorization and Proxy-Authorization
// values are redacted.
type stackLogHandler struct {
	inner slog.Handler
	lim   *logLimiter
	now   func() time.Time
}

func newStackLogHandler(inner slog.Handler) *stackLogHandler {
	return &stackLogHandler{
		inner: inner,
		lim:   &logLimiter{every: time.Second, burst: stackLogLinesPerSecond},
		now:   time.Now,
	}
}

func (h *stackLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *stackLogHandler) Handle(ctx context.Context, r slog.Record) error {
	now := h.now()
	suppressed, ok := h.lim.take(now, 1)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		h.summary(ctx, now, suppressed)
	}
	out := slog.NewRecord(r.Time, r.Level, cleanLogString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(cleanLogAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// Flush writes the summary of lines suppressed in a window that has passed;
// the switch calls it every second so that a burst ending in silence is
// still counted.
func (h *stackLogHandler) Flush() {
	now := h.now()
	if n := h.lim.flush(now); n > 0 {
		h.summary(context.Background(), now, n)
	}
}

func (h *stackLogHandler) summary(ctx context.Context, now time.Time, n int) {
	r := slog.NewRecord(now, slog.LevelWarn, strconv.Itoa(n)+" SIP stack log lines suppressed", 0)
	r.AddAttrs(slog.Int("suppressed", n))
	h.inner.Handle(ctx, r)
}

func (h *stackLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = cleanLogAttr(a)
	}
	return &stackLogHandler{inner: h.inner.WithAttrs(clean), lim: h.lim, now: h.now}
}

func (h *stackLogHandler) WithGroup(name string) slog.Handler {
	return &stackLogHandler{inner: h.inner.WithGroup(name), lim: h.lim, now: h.now}
}

func cleanLogAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, cleanLogString(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = cleanLogAttr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, cleanLogString(x.Error()))
		case []byte:
			return slog.String(a.Key, cleanLogString(string(x)))
		case interface{ String() string }:
			return slog.String(a.Key, cleanLogString(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// credentials matches an Authorization or Proxy-Authorization header and
// its value up to the end of the line, wherever it appears in a text.
var credentials = regexp.MustCompile(`(?i)((?:proxy-)?authorization[ \t]*:)[^\r\n]*`)

// cleanLogString redacts credentials, then keeps at most
// stackLogMaxInput bytes (on a rune boundary) and says how long s was.
func cleanLogString(s string) string {
	if len(s) > stackLogMaxInput+64 {
		// Redaction needs only what is kept, plus room for a header name
		// cut by the limit.
		tail := len(s)
		s = s[:stackLogMaxInput+64]
		s = credentials.ReplaceAllString(s, "$1 <redacted>")
		return truncateUTF8(s, stackLogMaxInput) + "…(" + strconv.Itoa(tail) + " bytes)"
	}
	if strings.Contains(strings.ToLower(s), "authorization") {
		s = credentials.ReplaceAllString(s, "$1 <redacted>")
	}
	if len(s) > stackLogMaxInput {
		return truncateUTF8(s, stackLogMaxInput) + "…(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	// Drop a rune the cut split; bytes that were never UTF-8 stay, and the
	// log encoder escapes them.
	for back := 1; back < utf8.UTFMax && back <= len(s); back++ {
		b := s[len(s)-back]
		if b&0xC0 == 0x80 {
			continue // continuation byte: look further back for the start
		}
		if !utf8.FullRuneInString(s[len(s)-back:]) {
			s = s[:len(s)-back]
		}
		break
	}
	return s
}
