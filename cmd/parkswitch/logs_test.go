package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// TestLogLines: refusals of a park and of a retrieve are one line each
// with the call, policy, code and reason; an RTP-timeout hang-up is a
// warning; every line has an RFC 3339 time with the date and no empty field.
func TestLogLines(t *testing.T) {
	var logs syncBuffer
	ts := startServer(t, "", func(o *sip.Options) {
		o.Logger = zerolog.New(&logs).With().Timestamp().Logger()
		o.MediaTimeout = 1500 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	dave := phone(t, ctx, ts, "1004", "udp") // Global: no park

	a, d := call(t, ctx, alice, dave, "1004")
	if code, _ := d.Refer(ctx, parkURI); code != 403 {
		t.Errorf("REFER by a Global user: %d, want 403", code)
	}
	if _, err := dave.Dial(ctx, "10"); siptest.StatusCode(err) != 403 {
		t.Errorf("retrieve by a Global user: %v, want 403", err)
	}
	if _, err := bob.Dial(ctx, "42"); siptest.StatusCode(err) != 404 {
		t.Errorf("retrieve of an empty code: %v, want 404", err)
	}
	// Nobody sends RTP: the relay ends the call.
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("silent call was not ended")
	}
	waitDone(t, d, "callee")
	// The BYEs go out before the switch writes its line for the call.
	waitUntil(t, 5*time.Second, "the call's end to be logged", func() bool {
		return strings.Contains(logs.String(), `"reason":"rtp timeout"`)
	})

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		lines = append(lines, m)
		ts, _ := m["time"].(string)
		if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.Contains(ts, "T") {
			t.Errorf("time %q is not RFC 3339 with a date: %s", ts, l)
		}
		for k, v := range m {
			if v == "" {
				t.Errorf("empty field %s in %s", k, l)
			}
		}
	}
	find := func(msg string, match map[string]any) map[string]any {
		t.Helper()
		var found []map[string]any
	next:
		for _, m := range lines {
			if m["message"] != msg {
				continue
			}
			for k, v := range match {
				if m[k] != v {
					continue next
				}
			}
			found = append(found, m)
		}
		if len(found) != 1 {
			t.Errorf("%d lines %q with %v, want 1:\n%s", len(found), msg, match, logs.String())
			return nil
		}
		return found[0]
	}
	if m := find("park refused", map[string]any{"policy": "Global", "reason": "not_allowed", "status": 403.0, "user": "1004"}); m != nil && m["call_id"] != d.CallID() {
		t.Errorf("park refusal names call %v, want %s", m["call_id"], d.CallID())
	}
	find("retrieve refused", map[string]any{"policy": "Global", "orbit": 10.0, "reason": "not_allowed", "status": 403.0})
	find("retrieve refused", map[string]any{"policy": "DemoPark", "orbit": 42.0, "reason": "no_orbit", "status": 404.0})
	find("call ended", map[string]any{"reason": "rtp timeout", "level": "warn"})
}
