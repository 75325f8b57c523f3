package sip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestStackLogBounds: at most stackLogLinesPerSecond lines a second
// including the summary, each input value cut to stackLogMaxInput bytes,
// credentials redacted wherever they appear.
func TestStackLogBounds(t *testing.T) {
	var buf bytes.Buffer
	h := newStackLogHandler(zerolog.NewSlogHandler(zerolog.New(&buf)))
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	log := slog.New(h).With("caller", "Transport<UDP>")

	payload := "INVITE sip:1002@contoso.com SIP/2.0\r\nAuthorization: Digest username=\"1001\", response=\"6629fae49393a05397450978507c4ef1\"\r\n" +
		"proxy-authorization :Digest nonce=\"abc\", cnonce=\"s3cr3t\"\r\n" + strings.Repeat("x", 30000)
	for range 100 {
		log.Error("failed to parse", "data", payload, "error", errors.New("bad header: "+payload))
	}
	lines := records(t, &buf)
	if len(lines) != stackLogLinesPerSecond {
		t.Fatalf("%d lines in one second, want %d", len(lines), stackLogLinesPerSecond)
	}
	for _, l := range lines {
		for _, key := range []string{"data", "error"} {
			v, _ := l[key].(string)
			if strings.Contains(v, "6629fae4") || strings.Contains(v, "s3cr3t") || strings.Contains(v, "username") {
				t.Errorf("%s leaks credentials: %q", key, v)
			}
			if !strings.Contains(v, "<redacted>") {
				t.Errorf("%s not redacted: %q", key, v)
			}
			if strings.HasSuffix(v, "bytes)") {
				if cut, _, _ := strings.Cut(v, "…("); len(cut) > stackLogMaxInput {
					t.Errorf("%s keeps %d bytes of input", key, len(cut))
				}
			} else {
				t.Errorf("%s not marked as cut: %q", key, v)
			}
		}
		if l["caller"] != "Transport<UDP>" {
			t.Errorf("attributes lost: %v", l)
		}
	}

	// The next second starts with the count of what was dropped, and the
	// summary counts against the limit.
	now = now.Add(time.Second)
	for range 20 {
		log.Warn("short")
	}
	lines = records(t, &buf)
	if len(lines) != stackLogLinesPerSecond {
		t.Fatalf("%d lines in the next second, want %d", len(lines), stackLogLinesPerSecond)
	}
	if n, _ := lines[0]["suppressed"].(float64); n != 90 {
		t.Errorf("first line of the next second %v, want a summary of 90", lines[0])
	}

	// A burst that ends in silence is still counted, by Flush.
	h.Flush()
	if lines := records(t, &buf); len(lines) != 0 {
		t.Errorf("Flush within the window wrote %v", lines)
	}
	now = now.Add(1500 * time.Millisecond)
	h.Flush()
	lines = records(t, &buf)
	if len(lines) != 1 || lines[0]["suppressed"] != float64(11) {
		t.Errorf("Flush after the window wrote %v, want a summary of 11", lines)
	}
	h.Flush()
	if lines := records(t, &buf); len(lines) != 0 {
		t.Errorf("second Flush wrote %v", lines)
	}
	_ = h.Handle(context.Background(), slog.NewRecord(now, slog.LevelWarn, "ok", 0))
	if lines := records(t, &buf); len(lines) != 1 || lines[0]["suppressed"] != nil {
		t.Errorf("after Flush: %v", lines)
	}
}

func TestCleanLogString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"short", "short"},
		{"Authorization: Digest response=\"x\"\r\nVia: a", "Authorization: <redacted>\r\nVia: a"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…(300 bytes)"},
		{strings.Repeat("a", 199) + "é" + strings.Repeat("a", 100), strings.Repeat("a", 199) + "…(301 bytes)"},
		{strings.Repeat("a", 190) + "Authorization: Digest " + strings.Repeat("k", 100), strings.Repeat("a", 190) + "Authorizat…(312 bytes)"},
	}
	for _, c := range cases {
		if got := cleanLogString(c.in); got != c.want {
			t.Errorf("cleanLogString(%.40q…) = %q, want %q", c.in, got, c.want)
		}
	}
}

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	buf.Reset()
	return out
}
