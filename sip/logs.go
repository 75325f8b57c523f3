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
