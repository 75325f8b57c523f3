package sip

import (
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// abnormalEnds are the reasons of call ends that point at a fault (a
// phone gone silent, a leg that failed): they are logged as warnings.
var abnormalEnds = map[string]bool{
	"rtp timeout":          true,
	"bad offer":            true,
	"bad answer":           true,
	"no ACK":               true,
	"no ACK for re-INVITE": true,
	"retrieve failed":      true,
}

// endLevel is the level of the "call ended" line for reason why.
func endLevel(why string) zerolog.Level {
	if abnormalEnds[why] {
		return zerolog.WarnLevel
	}
	return zerolog.InfoLevel
}

// strIf adds key only when val is set, so that lines carry no empty fields.
func strIf(ev *zerolog.Event, key, val string) *zerolog.Event {
	if val == "" {
		return ev
	}
	return ev.Str(key, val)
}

// logRefusal writes the one line of a refused park (what "park", a REFER)
// or retrieve (what "retrieve", an INVITE to a code): the call, the
// policy and code when known, the status sent and why.
func (s *Switch) logRefusal(what string, req *sip.Request, status int, policy string, code int, reason string) {
	ev := s.log.Info().Str("event", what+"_refused")
	if id := req.CallID(); id != nil {
		ev = ev.Str("call_id", id.Value())
	}
	ev = strIf(ev, "policy", policy)
	if code > 0 {
		ev = ev.Int("orbit", code)
	}
	if from := req.From(); from != nil {
		ev = strIf(ev, "user", from.Address.User)
	}
	ev.Int("status", status).Str("reason", reason).Msg(what + " refused")
}
