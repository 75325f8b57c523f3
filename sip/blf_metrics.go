package sip

import "github.com/prometheus/client_golang/prometheus"

// lampMetrics are the park lamps' Prometheus series.
type lampMetrics struct {
	notifies *prometheus.CounterVec
}

func newLampMetrics(s *Switch, reg prometheus.Registerer) lampMetrics {
	m := lampMetrics{notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parkswitch_lamp_notifies_total", Help: "Park lamp (BLF) NOTIFYs sent, by result: answered 2xx, or failed (an error response or none).",
	}, []string{"result"})}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.notifies, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parkswitch_subscriptions", Help: "Park lamp (BLF) subscriptions in force.",
	}, func() float64 { return float64(s.Subscriptions()) }))
	return m
}

// sent counts one NOTIFY.
func (m lampMetrics) sent(ok bool) {
	result := "failed"
	if ok {
		result = "answered"
	}
	m.notifies.WithLabelValues(result).Inc()
}
