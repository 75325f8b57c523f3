package sip

import (
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

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
	var callID, user string
	if id := req.CallID(); id != nil {
		callID = id.Value()
	}
	if from := req.From(); from != nil {
		user = from.Address.User
	}
	s.refusal(what, callID, user, policy, code).Int("status", status).Str("reason", reason).Msg(what + " refused")
}

// refusal starts the line of a refusal, for logRefusal and for those no
// request asked for (a DTMF park).
func (s *Switch) refusal(what, callID, user, policy string, code int) *zerolog.Event {
	ev := strIf(s.log.Info().Str("event", what+"_refused"), "call_id", callID)
	ev = strIf(ev, "policy", policy)
	if code > 0 {
		ev = ev.Int("orbit", code)
	}
	return strIf(ev, "user", user)
}
