package configs

import _ "embed"

// music_on_hold.wav is rendered, not recorded: this re-renders it, byte for
// byte the file in the repository.
//
//go:generate go run ./moh -o music_on_hold.wav

// MusicOnHold is the built-in music on hold: 24 seconds of gentle music, 8
// kHz mono 16-bit PCM WAV, played to parked callers when the configuration
// names no file of its own. configs/moh/gen.go synthesises it.
//
//go:embed music_on_hold.wav
var MusicOnHold []byte
