package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/parkswitch/parkswitch/media"
)

// PromptNames are the prompts the switch speaks a park code with, as file
// names without .wav: "parked at", then the digits "zero" to "nine".
var PromptNames = []string{"parked_at", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// maxPromptBytes bounds a replacement prompt: a minute of 8 kHz 16-bit
// audio, far more than a word takes, so that a wrong file is not read whole.
const maxPromptBytes = 60 * 8000 * 2

// checkPrompts reads park.prompts_dir: each WAV there replaces the built-in
// prompt of its name, and must be one the switch speaks, in the one format
// it plays. Other files are left alone; a prompt missing there stays the
// built-in one.
func (p *parser) checkPrompts() {
	pk, k := &p.c.Park, p.park
	if k.Bad("prompts_dir") || pk.PromptsDir == "" {
		return
	}
	pk.PromptsDir = resolvePath(p.c.Path, pk.PromptsDir)
	line := k.Line("prompts_dir")
	entries, err := os.ReadDir(pk.PromptsDir)
	if err != nil {
		p.d.Addf(line, "prompts_dir %s cannot be read (%v): fix the path (relative to this file's directory) or leave it empty for the built-in prompts", pk.PromptsDir, unwrapPathError(err))
		return
	}
	known := make(map[string]bool, len(PromptNames))
	for _, n := range PromptNames {
		known[n] = true
	}
	p.c.Prompts = make(map[string]*media.Prompt)
	for _, e := range entries {
		name, isWAV := strings.CutSuffix(e.Name(), ".wav")
		path := filepath.Join(pk.PromptsDir, e.Name())
		switch {
		case !isWAV || e.IsDir():
		case !known[name]:
			p.d.Addf(line, "prompts_dir file %s is no prompt the switch speaks: name replacements parked_at.wav and 0.wav to 9.wav (the digits)", path)
		default:
			if pr, msg := loadPrompt(path); msg != "" {
				p.d.Addf(line, "prompts_dir file %s %s", path, msg)
			} else {
				p.c.Prompts[name] = pr
			}
		}
	}
}

// loadPrompt reads and encodes one prompt, or says what is wrong with it.
func loadPrompt(path string) (*media.Prompt, string) {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, "cannot be read (" + unwrapPathError(err).Error() + "): fix its permissions or remove it"
	case !st.Mode().IsRegular():
		return nil, "is not a file: remove it or put the WAV there"
	case st.Size() > maxPromptBytes:
		return nil, "is longer than a minute of 8 kHz audio: a prompt is a word or two, trim it"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "cannot be read (" + unwrapPathError(err).Error() + "): fix its permissions or remove it"
	}
	pr, err := media.NewPrompt(b)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return nil, "is not a usable prompt (" + err.Error() + "): convert it to 8 kHz mono 16-bit PCM WAV, e.g. sox in.wav -r 8000 -c 1 -b 16 " + filepath.Base(path)
	}
	return pr, ""
}
