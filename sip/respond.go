package sip

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/emiago/sipgo/sip"
)

// allowMethods is what the switch answers in Allow headers.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY, MESSAGE, REGISTER, SUBSCRIBE"

// statusBadEvent is RFC 6665 §8.3.2's 489, which sipgo does not name.
const statusBadEvent = 489

// reasons are RFC 3261 §21 phrases: sipgo names the codes but has no phrases.
var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
	200: "OK", 202: "Accepted",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
	413: "Request Entity Too Large", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
	420: "Bad Extension", 421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
	486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Server Time-out", 600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// reason gives the RFC 3261 reason phrase for a status code.
func reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	switch {
	case code < 200:
		return "Session Progress"
	case code < 300:
		return "OK"
	case code < 500:
		return "Request Failure"
	case code < 600:
		return "Server Failure"
	}
	return "Global Failure"
}

// response builds a response to req; phrase "" takes the standard one. A
// request without a To tag gets the tag toTag derives, so every response to
// it, and to its authenticated retry, carries the same one.
func (s *Switch) response(req *sip.Request, code int, phrase string) *sip.Response {
	if phrase == "" {
		phrase = reason(code)
	}
	return s.finish(req, sip.NewResponseFromRequest(req, code, phrase, nil))
}

// sdpResponse builds a 200 to req carrying an SDP body, like response.
func (s *Switch) sdpResponse(req *sip.Request, body []byte) *sip.Response {
	res := sip.NewSDPResponseFromRequest(req, body)
	if req.Method == sip.INVITE {
		res.AppendHeader(sip.NewHeader("Supported", "replaces")) // RFC 3891 §6.1
	}
	return s.finish(req, res)
}

// finish adds what every response of the switch carries: the To tag, the
// Server header and the rport-style destination.
func (s *Switch) finish(req *sip.Request, res *sip.Response) *sip.Response {
	if to := res.To(); to != nil && res.StatusCode > sip.StatusTrying {
		if tag, _ := req.To().Params.Get("tag"); tag == "" {
			to.Params.Add("tag", s.toTag(req))
		}
	}
	res.AppendHeader(sip.NewHeader("Server", "parkswitch"))
	if req.Transport() == "UDP" && req.MessageData.Source() != "" {
		// Answer where the request really came from, as if it had asked
		// for rport (RFC 3581): phones behind NAT are only reachable there.
		res.SetDestination(req.MessageData.Source())
	}
	return res
}

// toTag is the tag the switch answers a dialog-creating request with. It is
// derived from the Call-ID and From tag rather than random: a caller that
// retries with credentials keeps its Call-ID, and some (SIPp among them)
// keep the tag of the 407 for the whole call.
func (s *Switch) toTag(req *sip.Request) string {
	t, _ := s.tagMAC.Get().(*tagHash)
	if t == nil {
		t = &tagHash{mac: hmac.New(sha256.New, s.tagKey[:])}
	}
	defer func() {
		if cap(t.buf) <= maxPooledTagInput { // a crafted Call-ID is not kept
			s.tagMAC.Put(t)
		}
	}()
	t.mac.Reset()
	t.buf = append(t.buf[:0], req.CallID().Value()...)
	if tag, ok := req.From().Params.Get("tag"); ok {
		t.buf = append(t.buf, 0)
		t.buf = append(t.buf, tag...)
	}
	t.mac.Write(t.buf)
	t.sum = t.mac.Sum(t.sum[:0])
	return hex.EncodeToString(t.sum[:8])
}

// maxPooledTagInput bounds the scratch space a pooled tagHash keeps.
const maxPooledTagInput = 1024

// tagHash is toTag's MAC with its scratch space, reused: a dialog's
// tag is computed for every response to its INVITE.
type tagHash struct {
	mac      hash.Hash
	buf, sum []byte
}

// respond sends a response on a server transaction and logs a failure: the
// caller has nothing better to do than move on (the peer retransmits).
func (s *Switch) respond(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		s.log.Debug().Err(err).Int("status", res.StatusCode).Msg("respond failed")
	}
}

// reply answers req with a bare status.
func (s *Switch) reply(req *sip.Request, tx sip.ServerTransaction, code int, phrase string) {
	s.respond(tx, s.response(req, code, phrase))
}
