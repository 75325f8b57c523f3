package sip

import (
	"strconv"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the switch's Prometheus series.
type metrics struct {
	calls        prometheus.Counter
	callsEnded   *prometheus.CounterVec
	refused      *prometheus.CounterVec
	parkEvents   *prometheus.CounterVec
	parks        prometheus.Counter
	retrieves    prometheus.Counter
	restored     prometheus.Counter
	ringbacks    prometheus.Counter
	connsRefused *prometheus.CounterVec
}

// connRefused counts a TCP/TLS connection closed at accept for a limit.
func (m *metrics) connRefused(limit string) { m.connsRefused.WithLabelValues(limit).Inc() }

func newMetrics(s *Switch, reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parkswitch_calls_total", Help: "Calls accepted for routing.",
		}),
		callsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkswitch_calls_ended_total", Help: "Calls ended, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkswitch_refusals_total", Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parkswitch_parked_calls_restored_total", Help: "Parked calls taken up from the state store after a restart or from a node that stopped.",
		}),
		parkEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkswitch_park_events_total", Help: "Orbit state changes, by kind.",
		}, []string{"kind"}),
		parks:     prometheus.NewCounter(prometheus.CounterOpts{Name: "parkswitch_parks_total", Help: "Calls parked."}),
		retrieves: prometheus.NewCounter(prometheus.CounterOpts{Name: "parkswitch_retrieves_total", Help: "Parked calls retrieved by dialing their code."}),
		ringbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "parkswitch_ringbacks_total", Help: "Ringback calls placed for timed-out orbits."}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkswitch_sip_connections_refused_total", Help: "TCP/TLS connections closed at accept, by the limit they were over.",
		}, []string{"limit"}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.calls, m.callsEnded, m.refused, m.parkEvents, m.parks, m.retrieves, m.restored, m.ringbacks, m.connsRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_sip_connections", Help: "TCP/TLS connections accepted and open.",
		}, func() float64 { return float64(s.Connections()) }),
		orbitsCollector{s},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_calls_active", Help: "Calls ringing or answered.",
		}, func() float64 { return float64(s.ActiveCalls()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_registrations", Help: "Live registered contacts.",
		}, func() float64 { return float64(s.reg.Count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkswitch_dialogs", Help: "Dialogs (call legs) tracked.",
		}, func() float64 { return float64(s.Dialogs()) }),
	)
	return m
}

// reasonLabel names a refusal status for the refusals metric.
func reasonLabel(code int) string {
	switch code {
	case sip.StatusNotFound:
		return "not_found"
	case sip.StatusTemporarilyUnavailable:
		return "unavailable"
	case sip.StatusLoopDetected:
		return "loop"
	}
	return "status_" + strconv.Itoa(code)
}

// orbitsCollector reports the orbits in use per policy at scrape time.
type orbitsCollector struct{ s *Switch }

var orbitsDesc = prometheus.NewDesc("parkswitch_orbits_in_use", "Parked calls, per call park policy.", []string{"policy"}, nil)

func (o orbitsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- orbitsDesc }

func (o orbitsCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, p := range o.s.policies.Load().Policies() {
		counts[p.Identity] = 0
	}
	for _, info := range o.s.lot.Orbits() {
		counts[info.Policy]++
	}
	for p, n := range counts {
		ch <- prometheus.MustNewConstMetric(orbitsDesc, prometheus.GaugeValue, float64(n), p)
	}
}
