package sip

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the switch's Prometheus series.
type metrics struct {
	calls      prometheus.Counter
	callsEnded *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

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
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.calls, m.callsEnded, m.refused,
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
	case 404:
		return "not_found"
	case 480:
		return "unavailable"
	case 482:
		return "loop"
	}
	return "status_" + strconv.Itoa(code)
}

// metricWord turns a free-text reason into a label value of bounded
// cardinality (the first word).
func metricWord(why string) string {
	w, _, _ := strings.Cut(why, " ")
	return w
}
