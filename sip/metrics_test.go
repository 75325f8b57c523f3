package sip

import "testing"

func TestMetricWord(t *testing.T) {
	for in, want := range map[string]string{
		"bye from a":      "bye",
		"no ACK":          "no_ack",
		"not answered":    "not_answered",
		"park abandoned":  "park_abandoned",
		"cancelled":       "cancelled",
		"rtp timeout":     "rtp_timeout",
		"retrieve failed": "retrieve_failed",
	} {
		if got := metricWord(in); got != want {
			t.Errorf("metricWord(%q) = %q, want %q", in, got, want)
		}
	}
}
