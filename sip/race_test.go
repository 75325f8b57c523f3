//go:build race

package sip

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// pooled code allocates only under it.
const raceEnabled = true
