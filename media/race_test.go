//go:build race

package media

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// code that reuses pooled buffers (pion/srtp's) allocates only under it.
const raceEnabled = true
