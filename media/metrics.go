package media

import "sync/atomic"

// Process-wide totals, kept as plain atomics so that the metrics exporter can
// read them without the package depending on it.
var (
	relayedPackets atomic.Uint64
	relayedBytes   atomic.Uint64
	droppedPackets atomic.Uint64
	openEndpoints  atomic.Int64
)

// RelayedPackets is the number of packets relayed between bridged endpoints
// since start.
func RelayedPackets() uint64 { return relayedPackets.Load() }

// RelayedBytes is the number of bytes relayed between bridged endpoints since
// start.
func RelayedBytes() uint64 { return relayedBytes.Load() }

// DroppedPackets is the number of packets received and not relayed since
// start (see Stats.Dropped).
func DroppedPackets() uint64 { return droppedPackets.Load() }

// OpenEndpoints is the number of endpoints opened and not yet closed, over
// all pools. Tests assert it is 0 once their calls are over: every Open was
// matched by a Close, so no port or goroutine leaked.
func OpenEndpoints() int { return int(openEndpoints.Load()) }
