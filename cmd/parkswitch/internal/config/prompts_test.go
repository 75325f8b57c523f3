package config

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/media"
)

// wav16k is a WAV at 16 kHz: a format the switch does not play.
func wav16k() []byte {
	b := media.EncodeWAV(make([]int16, 800))
	binary.LittleEndian.PutUint32(b[24:], 16000)
	binary.LittleEndian.PutUint32(b[28:], 32000)
	return b
}

func TestPrompts(t *testing.T) {
	good := media.EncodeWAV(make([]int16, 1600))
	const head = "server:\n  domain: contoso.com\npark:\n" // lines 1–3
	for _, tt := range []struct {
		name  string
		main  string
		files map[string][]byte // in dir
		want  []want            // none: valid
		found []string          // replacements loaded
	}{
		{"default: built-in only", head + "  announce: true\n", nil, nil, nil},
		{"off", head + "  announce: false\n", nil, nil, nil},
		{"announce not a bool", head + "  announce: sometimes\n", nil,
			[]want{{"", 4, `announce must be true or false, not "sometimes"`}}, nil},
		{"replacements and other files", head + "  prompts_dir: prompts\n",
			map[string][]byte{"prompts/parked_at.wav": good, "prompts/7.wav": good, "prompts/README.txt": []byte("mine"), "prompts/old/1.wav": wav16k()},
			nil, []string{"7", "parked_at"}},
		{"missing directory", head + "  prompts_dir: nowhere\n", nil,
			[]want{{"", 4, "nowhere cannot be read (no such file or directory): fix the path (relative to this file's directory) or leave it empty for the built-in prompts"}}, nil},
		{"a file, not a directory", head + "  prompts_dir: parkswitch.yaml\n", nil,
			[]want{{"", 4, "parkswitch.yaml cannot be read (not a directory)"}}, nil},
		{"bad WAVs", head + "  announce: false\n  prompts_dir: prompts\n",
			map[string][]byte{"prompts/1.wav": wav16k(), "prompts/2.wav": []byte("ID3 an mp3"), "prompts/parked-at.wav": good, "prompts/0.wav": good},
			[]want{
				{"", 5, "prompts/1.wav is not a usable prompt (the file must be 8 kHz mono 16-bit PCM WAV, got 16000 Hz mono 16-bit): convert it to 8 kHz mono 16-bit PCM WAV, e.g. sox in.wav -r 8000 -c 1 -b 16 1.wav"},
				{"", 5, "prompts/2.wav is not a usable prompt (not a WAV file"},
				{"", 5, "prompts/parked-at.wav is no prompt the switch speaks: name replacements parked_at.wav and 0.wav to 9.wav"},
			}, nil},
		{"too long", head + "  prompts_dir: prompts\n",
			map[string][]byte{"prompts/3.wav": media.EncodeWAV(make([]int16, 61*8000))},
			[]want{{"", 4, "prompts/3.wav is longer than a minute of 8 kHz audio"}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "parkswitch.yaml")
			if err := os.WriteFile(path, []byte(tt.main), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Parse(path, []byte(tt.main), files(map[string]string{filepath.Join(dir, "policies.yaml"): ""}))
			if len(tt.want) > 0 {
				for i := range tt.want {
					tt.want[i].file = path
				}
				checkProblems(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.name != "off"; c.Park.Announce != want {
				t.Errorf("Announce = %v, want %v", c.Park.Announce, want)
			}
			if len(c.Prompts) != len(tt.found) {
				t.Errorf("%d replacements loaded, want %v", len(c.Prompts), tt.found)
			}
			for _, name := range tt.found {
				if p := c.Prompts[name]; p == nil || p.Duration() != 200*time.Millisecond {
					t.Errorf("replacement %s = %v", name, p)
				}
			}
			if tt.files != nil && c.Park.PromptsDir != filepath.Join(dir, "prompts") {
				t.Errorf("PromptsDir = %s, not resolved against the config's directory", c.Park.PromptsDir)
			}
		})
	}
}
