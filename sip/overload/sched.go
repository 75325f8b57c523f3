package overload

import (
	"math"
	"runtime/metrics"
	"time"
)

// schedLatencies is the Go runtime's histogram of the time goroutines
// spent runnable before they ran: it grows when there is more work than
// CPUs, whatever the work is.
const schedLatencies = "/sched/latencies:seconds"

// minWaits is the fewest waits in an interval whose quantile counts. Fewer
// mean the switch has too little to do to be behind (a call or two a
// second makes some 10 a 100 ms, 1,000 calls/s some 450), and their 99th
// percentile is only the slowest one: a process the system kept off its
// CPUs for a moment (a loaded test box) is not overloaded by calls, and
// shedding its few would not help it.
const minWaits = 200

// SchedWait reads the scheduler's latency histogram and reports, on each
// call, a quantile of the waits since the previous call. It is not safe
// for concurrent use; one Run loop owns it.
type SchedWait struct {
	q      float64
	sample []metrics.Sample
	prev   []uint64
}

// NewSchedWait returns a reader of quantile q (0 < q < 1) of the waits.
func NewSchedWait(q float64) *SchedWait {
	return &SchedWait{q: q, sample: []metrics.Sample{{Name: schedLatencies}}}
}

// Sample is the quantile of the waits since the last call (0 when there
// were fewer than minWaits, or the runtime keeps no such histogram).
func (w *SchedWait) Sample() time.Duration {
	metrics.Read(w.sample)
	if w.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := w.sample[0].Value.Float64Histogram()
	if len(w.prev) != len(h.Counts) {
		w.prev = make([]uint64, len(h.Counts))
	}
	d := quantile(h.Counts, w.prev, h.Buckets, w.q)
	copy(w.prev, h.Counts)
	return d
}

// quantile is quantile q of the histogram counts-prev, whose bucket i
// spans buckets[i] to buckets[i+1]; a bucket's upper bound stands for its
// waits (the lower bound for the last, unbounded, one). Under minWaits
// waits it is 0.
func quantile(counts, prev []uint64, buckets []float64, q float64) time.Duration {
	var total uint64
	for i, n := range counts {
		total += n - prev[i]
	}
	if total < minWaits {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range counts {
		seen += n - prev[i]
		if seen >= rank {
			bound := buckets[i+1]
			if math.IsInf(bound, 1) {
				bound = buckets[i]
			}
			return time.Duration(bound * float64(time.Second))
		}
	}
	return 0
}
