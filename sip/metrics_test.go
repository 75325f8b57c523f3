package sip

import (
	"strings"
	"testing"
)

// TestEndReasonLabels pins the parkswitch_calls_ended label values: the
// reason's words up to " from ", lower case, spaces as underscores.
func TestEndReasonLabels(t *testing.T) {
	for _, tt := range []struct {
		why        endReason
		text, want string
	}{
		{byeFrom(&leg{role: roleCaller}), "bye from a", "bye"},
		{byeFrom(&leg{role: roleCallee}), "bye from b", "bye"},
		{endNoACK, "no ACK", "no_ack"},
		{endNoReinviteACK, "no ACK for re-INVITE", "no_ack_for_re-invite"},
		{endNotAnswered, "not answered", "not_answered"},
		{endParkAbandoned, "park abandoned", "park_abandoned"},
		{endCancelled, "cancelled", "cancelled"},
		{endRTPTimeout, "rtp timeout", "rtp_timeout"},
		{endRetrieveFailed, "retrieve failed", "retrieve_failed"},
		{endBadOffer, "bad offer", "bad_offer"},
		{endBadAnswer, "bad answer", "bad_answer"},
		{endShutdown, "shutdown", "shutdown"},
		{endTransferred, "transferred", "transferred"},
		{endConsultTimeout, "consult timeout", "consult_timeout"},
	} {
		if tt.why.text != tt.text || tt.why.label != tt.want {
			t.Errorf("end reason %+v, want text %q label %q", tt.why, tt.text, tt.want)
		}
		words, _, _ := strings.Cut(tt.why.text, " from ")
		if rule := strings.ToLower(strings.ReplaceAll(words, " ", "_")); rule != tt.why.label {
			t.Errorf("label %q of %q does not follow the rule (%q)", tt.why.label, tt.why.text, rule)
		}
	}
}
