package sip

import "github.com/rs/zerolog"

// endReason says why a call ended: text is the "call ended" line's reason,
// label the parkswitch_calls_ended series it counts in (which side hung up
// is left to the logs), and abnormal marks ends that point at a fault (a
// phone gone silent, a leg that failed), logged as warnings.
type endReason struct {
	text     string
	label    string
	abnormal bool
}

var (
	endCancelled      = endReason{text: "cancelled", label: "cancelled"}
	endNotAnswered    = endReason{text: "not answered", label: "not_answered"}
	endParkAbandoned  = endReason{text: "park abandoned", label: "park_abandoned"}
	endTransferFailed = endReason{text: "transfer failed", label: "transfer_failed"}
	endTransferred    = endReason{text: "transferred", label: "transferred"}         // joined to another call, or parked, by an attended transfer
	endConsultTimeout = endReason{text: "consult timeout", label: "consult_timeout"} // a call to the park address that parked nothing
	endShutdown       = endReason{text: "shutdown", label: "shutdown"}
	endBadOffer       = endReason{text: "bad offer", label: "bad_offer", abnormal: true}
	endBadAnswer      = endReason{text: "bad answer", label: "bad_answer", abnormal: true}
	endNoACK          = endReason{text: "no ACK", label: "no_ack", abnormal: true}
	endNoReinviteACK  = endReason{text: "no ACK for re-INVITE", label: "no_ack_for_re-invite", abnormal: true}
	endRetrieveFailed = endReason{text: "retrieve failed", label: "retrieve_failed", abnormal: true}
	endRTPTimeout     = endReason{text: "rtp timeout", label: "rtp_timeout", abnormal: true}
	endRestoreFailed  = endReason{text: "restore failed", label: "restore_failed", abnormal: true}
)

// byeFrom is the end of a call hung up by leg l.
func byeFrom(l *leg) endReason {
	return endReason{text: "bye from " + l.String(), label: "bye"}
}

// level is the level of the "call ended" line.
func (r endReason) level() zerolog.Level {
	if r.abnormal {
		return zerolog.WarnLevel
	}
	return zerolog.InfoLevel
}
