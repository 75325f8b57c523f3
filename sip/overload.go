package sip

import (
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkswitch/parkswitch/sip/overload"
)

// DefaultOverloadWait is the scheduling wait over which new work is shed.
// On two CPUs, a switch that keeps up (3,500 calls/s with SIPp on the same
// box) sees a 99th percentile of 1.6 ms in the median 100 ms, with spikes
// to 67 ms; one offered more than it takes (5,000) sees 40–270 ms for as
// long as it lasts, and its callers retransmit.
const DefaultOverloadWait = 40 * time.Millisecond

// shedQuiet is how long the switch must admit everything before a shedding
// episode is logged as over: it bounds the overload log to a few lines a
// minute however the share swings.
const shedQuiet = 5 * time.Second

// shedding is the overload control's state, owned by its Run loop.
type shedding struct {
	ctl     *overload.Control
	shed    atomic.Int64 // requests refused since the switch started
	since   time.Time    // the episode under way began (zero: none)
	calm    time.Time    // everything has been admitted since (zero: not so)
	atStart int64        // shed when the episode began
}

func (s *Switch) initOverload(reg prometheus.Registerer) {
	wait := s.opts.OverloadWait
	if wait == 0 {
		wait = DefaultOverloadWait
	}
	s.load.ctl = overload.New(max(wait, 0))
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_overload_admitted_ratio",
			Help: "Share of new dialogs and registrations admitted; below 1 while the switch is behind and sheds the rest with 503.",
		}, func() float64 { share, _ := s.load.ctl.State(); return share }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_sched_wait_seconds",
			Help: "99th percentile of the time runnable goroutines wait for a CPU, per 100 ms, smoothed over the last few.",
		}, func() float64 { _, p99 := s.load.ctl.State(); return p99.Seconds() }),
	)
}

// runOverload starts the control loop, stopped by Shutdown.
func (s *Switch) runOverload() {
	if s.load.ctl.Target() <= 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sample, every := s.opts.overloadSample, s.opts.overloadEvery
		if sample == nil {
			sample, every = overload.NewSchedWait(0.99).Sample, overload.DefaultInterval
		}
		s.load.ctl.Run(s.ctx, every, sample, s.overloadStep)
	}()
}

// overloadStep logs the start and the end of each shedding episode.
func (s *Switch) overloadStep(share float64, wait time.Duration) {
	l := &s.load
	now := s.opts.Now()
	switch {
	case share < 1 && l.since.IsZero():
		l.since, l.atStart = now, l.shed.Load()
		s.log.Warn().Dur("sched_wait", wait).Dur("target", l.ctl.Target()).Float64("admitted", share).
			Msg("switch is behind: shedding new dialogs and registrations with 503")
	case share < 1:
		l.calm = time.Time{}
	case !l.since.IsZero() && l.calm.IsZero():
		l.calm = now
	case !l.since.IsZero() && now.Sub(l.calm) >= shedQuiet:
		s.log.Warn().Int64("shed", l.shed.Load()-l.atStart).Dur("for", l.calm.Sub(l.since)).
			Msg("switch caught up: admitting everything again")
		l.since, l.calm = time.Time{}, time.Time{}
	}
}

// shed answers 503 to req when it would start new work the switch is too
// far behind to take on. In-dialog requests always pass, and so do
// INVITEs that replace a dialog (RFC 3891): ending and moving calls is
// how a switch that is behind catches up. So do requests another node
// sends, which it admitted (by the cached node view only: a forged hop
// header must not make the switch read the store). The 503 goes
// once, with no Retry-After: that would tell a trunk's proxy to send
// nothing at all for a while (RFC 3261 §21.5.4), turning a shed share
// into an on/off swing (RFC 5390 §5).
func (s *Switch) shed(req *sip.Request, tx sip.ServerTransaction) bool {
	if !s.load.ctl.Shedding() || !startsWork(req) || s.load.ctl.Admit(req.CallID().Value()) {
		return false
	}
	if _, ok := s.nodeOf(req, false); ok {
		return false // another node admitted it already
	}
	s.load.shed.Add(1)
	s.metrics.refused.WithLabelValues("overload").Inc()
	s.replyOnce(req, tx, sip.StatusServiceUnavailable, "Server Overloaded")
	return true
}

// startsWork reports whether req would create a dialog or a registration.
func startsWork(req *sip.Request) bool {
	switch req.Method {
	case sip.REGISTER:
		return true
	case sip.INVITE, sip.SUBSCRIBE:
		to := req.To()
		if to == nil {
			return false // malformed: sipcheck answers it
		}
		if tag, _ := to.Params.Get("tag"); tag != "" {
			return false
		}
		return req.Method != sip.INVITE || req.GetHeader("Replaces") == nil
	}
	return false
}
