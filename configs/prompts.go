package configs

import "embed"

// The prompts are rendered by text to speech; regenerating them needs
// espeak-ng and sox (see prompts/gen.sh), building does not.
//
//go:generate sh prompts/gen.sh prompts

// Prompts holds the built-in spoken prompts, prompts/<name>.wav (8 kHz mono
// 16-bit PCM): parked_at.wav ("parked at") and 0.wav to 9.wav (the digits,
// "zero" to "nine"), which the switch plays to a parker as "parked at one
// two" for code 12. park.prompts_dir replaces any of them.
//
//go:embed prompts/*.wav
var Prompts embed.FS
