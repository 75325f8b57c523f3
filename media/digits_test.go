package media

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidCode(t *testing.T) {
	for code, want := range map[string]bool{
		"#72": true, "*5": true, "0": true, "12345678": true, "*#*#*#*#": true,
		"": false, "123456789": false, "#7a": false, "# 72": false, "٣": false,
	} {
		if got := ValidCode(code); got != want {
			t.Errorf("ValidCode(%q) = %v, want %v", code, got, want)
		}
	}
}

// TestDigitMatcher keys sequences at given offsets (ms) and checks what
// is passed on, when, and whether the code matched. The result notation:
// each keyed digit writes the digits released before it in brackets, then
// "+" (withheld), "!" (match) or itself (passed).
func TestDigitMatcher(t *testing.T) {
	type key struct {
		d  byte
		at int // ms
	}
	keys := func(s string, gap int) []key {
		var ks []key
		for i := range len(s) {
			ks = append(ks, key{s[i], i * gap})
		}
		return ks
	}
	tests := []struct {
		name   string
		code   string
		keys   []key
		expire int // ms: Expire after the last key, 0 = not called
		want   string
		left   int // digits still withheld
	}{
		{"code", "#72", keys("#72", 300), 0, "++!", 0},
		{"not a prefix passes at once", "#72", keys("512", 300), 0, "512", 0},
		{"broken at the second digit", "#72", keys("#5", 300), 0, "+[#]5", 0},
		{"broken at the last digit", "#72", keys("#75", 300), 0, "++[#7]5", 0},
		{"a repeated first key starts over", "#72", keys("##72", 300), 0, "+[#]+" + "+!", 0},
		{"overlapping code keeps the tail", "*7*8", keys("*7*7*8", 300), 0, "+++[*7]+" + "+!", 0},
		{"code twice", "#72", keys("#72#72", 300), 0, "++!++!", 0},
		{"digits after a match pass", "#72", keys("#725", 300), 0, "++!5", 0},
		{"one-key code", "#", keys("1#2", 300), 0, "1!2", 0},
		{"no code: everything passes", "", keys("#72", 300), 0, "#72", 0},
		{"a non-keypad event breaks", "#72", []key{{'#', 0}, {'A', 100}, {'7', 200}}, 0, "+[#]A7", 0},
		{"timeout between digits", "#72", []key{{'#', 0}, {'7', 2500}, {'2', 2600}}, 0, "+[#]72", 0},
		{"just inside the timeout", "#72", []key{{'#', 0}, {'7', 1999}, {'2', 3998}}, 0, "++!", 0},
		{"not expired yet", "#72", keys("#7", 300), 1500, "++", 2},
		{"expire releases all", "#72", keys("#7", 300), 2301, "++[#7]", 0},
		{"long code withheld up to its last key", "12345678", keys("1234567", 10), 0, "+++++++", 7},
	}
	base := time.Unix(1000, 0)
	const timeout = 2 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m DigitMatcher
			var out strings.Builder
			var withheld []byte // mirrors what the matcher holds
			last := 0
			for _, k := range tt.keys {
				last = k.at
				v := m.Key(k.d, tt.code, base.Add(time.Duration(k.at)*time.Millisecond), timeout)
				if v.Release > len(withheld) {
					t.Fatalf("released %d of %d withheld", v.Release, len(withheld))
				}
				if v.Release > 0 {
					fmt.Fprintf(&out, "[%s]", withheld[:v.Release])
					withheld = withheld[v.Release:]
				}
				switch {
				case v.Match:
					out.WriteByte('!')
					withheld = nil
				case v.Hold:
					out.WriteByte('+')
					withheld = append(withheld, k.d)
				default:
					out.WriteByte(k.d)
				}
				if m.Held() != len(withheld) {
					t.Fatalf("Held() = %d, want %d", m.Held(), len(withheld))
				}
			}
			if tt.expire > 0 {
				at := base.Add(time.Duration(last+tt.expire) * time.Millisecond)
				if n := m.Expire(at, timeout); n > 0 {
					fmt.Fprintf(&out, "[%s]", withheld[:n])
				}
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if m.Held() != tt.left {
				t.Errorf("%d digits left withheld, want %d", m.Held(), tt.left)
			}
		})
	}
}

// TestDigitMatcherTouch: a key still held down keeps its digits from
// timing out.
func TestDigitMatcherTouch(t *testing.T) {
	var m DigitMatcher
	t0 := time.Unix(1000, 0)
	m.Key('#', "#72", t0, time.Second)
	m.Touch(t0.Add(900 * time.Millisecond))
	if n := m.Expire(t0.Add(1500*time.Millisecond), time.Second); n != 0 {
		t.Fatalf("expired %d digits 600 ms after the last touch", n)
	}
	if dl := m.Deadline(time.Second); !dl.Equal(t0.Add(1900 * time.Millisecond)) {
		t.Errorf("Deadline = %v", dl)
	}
	if n := m.Expire(t0.Add(1900*time.Millisecond), time.Second); n != 1 {
		t.Errorf("expired %d digits a timeout after the last touch, want 1", n)
	}
	if !m.Deadline(time.Second).IsZero() {
		t.Error("a deadline with nothing withheld")
	}
}

func TestEventPayloadType(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
	for _, tt := range []struct {
		name, media string
		want        int
	}{
		{"telephone-event 101", "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", 101},
		{"another number", "m=audio 4000 RTP/AVP 8 96\r\na=rtpmap:96 TELEPHONE-EVENT/8000\r\n", 96},
		{"the 8 kHz one of two", "m=audio 4000 RTP/AVP 111 110 100\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:100 telephone-event/8000\r\n", 100},
		{"only a wideband one", "m=audio 4000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n", 110},
		{"none", "m=audio 4000 RTP/AVP 0 8\r\n", -1},
	} {
		d, err := ParseOffer([]byte(head + tt.media))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := d.EventPayloadType(); got != tt.want {
			t.Errorf("%s: EventPayloadType = %d, want %d", tt.name, got, tt.want)
		}
	}
}
