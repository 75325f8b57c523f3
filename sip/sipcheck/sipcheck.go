// Package sipcheck validates parsed SIP requests before they are routed.
//
// sipgo's parser is lenient: it accepts several messages that RFC 4475
// §3.1.2 calls invalid. Request checks what the switch relies on (request
// line, the headers that identify transactions and dialogs, framing) so a
// malformed request is answered with an error instead of being routed.
//
// Some defects are only visible in the raw header text, which sipgo does
// not keep. NewParser returns a sipgo parser that spots those in To, From
// and Contact and leaves the header untyped so that Request rejects it
// (see HeadersParser).
//
// ValidHost and ParseSIPURI hold the configuration to the same rules:
// a host or static contact the configuration accepts is one the switch
// can send requests to.
package sipcheck

import (
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Error is a reason to refuse a request. Reason is fixed text, never
// echoing request bytes, so it is safe to send as the reason phrase.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// statusUnsupportedURIScheme is SIP's 416; sipgo names that code after
// HTTP's "Requested Range Not Satisfiable".
const statusUnsupportedURIScheme = 416

// Sentinels for refusals that are not 400 Bad Request.
var (
	// ErrTooManyHops: Max-Forwards is 0 (483). Request reports it only
	// after every other check passed, so a caller that is itself the
	// target (REGISTER to the registrar, or OPTIONS as RFC 3261 §16.3
	// allows) may still answer the request.
	ErrTooManyHops error = &Error{Code: sip.StatusTooManyHops, Reason: "Too Many Hops"}
	// ErrVersionNotSupported: the request line is not SIP/2.0 (505).
	ErrVersionNotSupported error = &Error{Code: sip.StatusVersionNotSupported, Reason: "Version Not Supported"}
	// ErrUnsupportedURIScheme: the Request-URI is not sip, sips or tel (416).
	ErrUnsupportedURIScheme error = &Error{Code: statusUnsupportedURIScheme, Reason: "Unsupported URI Scheme"}
)

// StatusCode returns the response status for an error from Request:
// the sentinel's code, 400 for anything else, 0 for nil.
func StatusCode(err error) int {
	var e *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	default:
		return sip.StatusBadRequest
	}
}

func bad(reason string) error { return &Error{Code: sip.StatusBadRequest, Reason: reason} }

const maxCSeq = 1<<31 - 1 // RFC 3261 §8.1.1.5

// checks run in order; checkMaxForwards is last so that ErrTooManyHops
// means the request is otherwise sound.
var checks = []func(*sip.Request) error{
	checkRequestLine,
	checkVia,
	checkFromTo,
	checkCallIDCSeq,
	checkBody,
	checkContacts,
	checkMisc,
	checkMaxForwards,
}

// Request reports why a parsed request must not be routed, or nil. The
// caller answers with StatusCode(err) and err.Error() as reason phrase.
func Request(req *sip.Request) error {
	if req == nil {
		return bad("Missing Request")
	}
	for _, check := range checks {
		if err := check(req); err != nil {
			return err
		}
	}
	return nil
}

func checkRequestLine(req *sip.Request) error {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		if v, ok := strings.CutPrefix(strings.ToUpper(req.SipVersion), "SIP/"); ok {
			major, minor, ok := strings.Cut(v, ".")
			if ok && IsDigits(major) && IsDigits(minor) {
				return ErrVersionNotSupported
			}
		}
		return bad("Bad SIP Version")
	}
	if !isToken(string(req.Method)) {
		return bad("Bad Method")
	}
	u := &req.Recipient
	switch u.Scheme {
	case "", "sip", "sips": // sipgo treats a missing scheme as sip
		// RFC 3261 §19.1.1 Table 1: no headers in a Request-URI (RFC 4475
		// §3.1.2.11), and sipgo would copy them into forwarded requests.
		if !validSIPURI(u, false) {
			return bad("Bad Request-URI")
		}
	case "tel":
		raw := u.Raw()
		if raw == "" || raw[0] == ';' || !escapedIn(raw, telSet) {
			return bad("Bad Request-URI")
		}
	default:
		return ErrUnsupportedURIScheme
	}
	return nil
}

// validSIPURI checks the parts sipgo split out of a sip/sips URI.
func validSIPURI(u *sip.Uri, headersAllowed bool) bool {
	if u.HierarhicalSlashes || u.Wildcard {
		return false
	}
	if !escapedIn(u.User, userSet) || !escapedIn(u.Password, passwordSet) {
		return false
	}
	// An unbracketed addr-spec followed by LWS leaves it on the host (RFC
	// 4475 wsinv); that is sipgo's split, not the sender's mistake.
	if !validHost(strings.TrimRight(u.Host, lwsChars)) || u.Port < 0 || u.Port > 65535 {
		return false
	}
	for _, kv := range u.UriParams {
		if kv.K == "" || !escapedIn(kv.K, paramSet) || !escapedIn(kv.V, paramSet) {
			return false
		}
	}
	if len(u.Headers) > 0 && !headersAllowed {
		return false
	}
	for _, kv := range u.Headers {
		if kv.K == "" || !escapedIn(kv.K, headerSet) || !escapedIn(kv.V, headerSet) {
			return false
		}
	}
	return true
}

// validAddressURI checks the URI of a To, From or Contact value. Schemes
// other than sip/sips are opaque here: which ones to serve is the
// application's decision (RFC 4475 §3.3.4).
func validAddressURI(u *sip.Uri, headersAllowed bool) bool {
	switch u.Scheme {
	case "", "sip", "sips":
		return validSIPURI(u, headersAllowed)
	}
	raw := u.Raw()
	if raw == "" {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' {
			return false
		}
	}
	return true
}

// param returns the value of the named header parameter and how often it
// occurs. Names and values are trimmed: sipgo keeps the LWS that RFC 3261
// allows around ';' and '='.
func param(p sip.HeaderParams, name string) (string, int) {
	var v string
	n := 0
	for _, kv := range p {
		if strings.EqualFold(trimLWS(kv.K), name) {
			v = trimLWS(kv.V)
			n++
		}
	}
	return v, n
}

func checkVia(req *sip.Request) error {
	vias := req.GetHeaders("via")
	if len(vias) == 0 {
		return bad("Missing Via")
	}
	// Only the top Via is used: responses are sent back by it. The others
	// are returned untouched.
	v, ok := vias[0].(*sip.ViaHeader)
	if !ok {
		return bad("Malformed Via")
	}
	if !strings.EqualFold(trimLWS(v.ProtocolName), "SIP") || trimLWS(v.ProtocolVersion) != "2.0" {
		return bad("Bad Via Protocol")
	}
	if !isToken(trimLWS(v.Transport)) || !validHost(trimLWS(v.Host)) || v.Port < 0 || v.Port > 65535 {
		return bad("Malformed Via")
	}
	// A branch without the RFC 3261 magic cookie is tolerated (RFC 2543
	// peers, RFC 4475 §3.2.1): sipgo then matches the transaction by From
	// tag and Call-ID, and checkFromTo insists on the tag.
	if b, n := param(v.Params, "branch"); n > 1 || (n == 1 && !isToken(b)) {
		return bad("Bad Via Branch")
	}
	return nil
}

func checkFromTo(req *sip.Request) error {
	from := req.GetHeaders("from")
	switch {
	case len(from) == 0:
		return bad("Missing From")
	case len(from) > 1:
		return bad("Duplicate From")
	}
	f, ok := from[0].(*sip.FromHeader)
	if !ok || !validQuotedContent(f.DisplayName) || !validAddressURI(&f.Address, false) {
		return bad("Malformed From")
	}
	// RFC 3261 §8.1.1.3 makes the From tag mandatory. RFC 2543 peers
	// that omit it are refused: dialogs and, without a magic-cookie
	// branch, sipgo's transaction matching are keyed on it.
	if tag, n := param(f.Params, "tag"); n != 1 || !isToken(tag) {
		return bad("Missing or Bad From Tag")
	}

	to := req.GetHeaders("to")
	switch {
	case len(to) == 0:
		return bad("Missing To")
	case len(to) > 1:
		return bad("Duplicate To")
	}
	t, ok := to[0].(*sip.ToHeader)
	if !ok || !validQuotedContent(t.DisplayName) || !validAddressURI(&t.Address, false) {
		return bad("Malformed To")
	}
	if tag, n := param(t.Params, "tag"); n > 1 || (n == 1 && !isToken(tag)) {
		return bad("Bad To Tag")
	}
	return nil
}

func checkCallIDCSeq(req *sip.Request) error {
	ids := req.GetHeaders("call-id")
	switch {
	case len(ids) == 0:
		return bad("Missing Call-ID")
	case len(ids) > 1:
		return bad("Duplicate Call-ID")
	}
	id, ok := ids[0].(*sip.CallIDHeader)
	if !ok {
		return bad("Malformed Call-ID")
	}
	// callid = word [ "@" word ]
	local, host, hasAt := strings.Cut(string(*id), "@")
	if local == "" || !allIn(local, wordSet) || (hasAt && (host == "" || !allIn(host, wordSet))) {
		return bad("Malformed Call-ID")
	}

	cseqs := req.GetHeaders("cseq")
	switch {
	case len(cseqs) == 0:
		return bad("Missing CSeq")
	case len(cseqs) > 1:
		return bad("Duplicate CSeq")
	}
	cs, ok := cseqs[0].(*sip.CSeqHeader)
	if !ok || cs.SeqNo > maxCSeq {
		return bad("Bad CSeq")
	}
	// sipgo upper-cases the request-line method but not the CSeq one, so
	// the case of an extension method cannot be compared (RFC 4475
	// §3.1.1.2 has a mixed-case one).
	m := strings.TrimSpace(string(cs.MethodName))
	if !isToken(m) || !strings.EqualFold(m, string(req.Method)) {
		return bad("CSeq Method Mismatch")
	}
	return nil
}

func checkBody(req *sip.Request) error {
	body := req.Body()
	cl := req.GetHeaders("content-length")
	switch {
	case len(cl) > 1:
		// RFC 4475 §3.3.9: no way to know where the body ends.
		return bad("Duplicate Content-Length")
	case len(cl) == 1:
		v, ok := cl[0].(*sip.ContentLengthHeader)
		if !ok || int64(*v) != int64(len(body)) {
			return bad("Bad Content-Length")
		}
	}
	ct := req.GetHeaders("content-type")
	switch {
	case len(ct) > 1:
		return bad("Duplicate Content-Type")
	case len(ct) == 1:
		v, ok := ct[0].(*sip.ContentTypeHeader)
		if !ok {
			return bad("Bad Content-Type")
		}
		media, _, _ := strings.Cut(string(*v), ";")
		typ, sub, ok := strings.Cut(trimLWS(media), "/")
		if !ok || !isToken(trimLWS(typ)) || !isToken(trimLWS(sub)) {
			return bad("Bad Content-Type")
		}
	case len(body) > 0:
		// RFC 3261 §20.15: a body must be typed; the switch reads SDP.
		return bad("Missing Content-Type")
	}
	return nil
}

func checkContacts(req *sip.Request) error {
	contacts := req.GetHeaders("contact")
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok || !validQuotedContent(c.DisplayName) {
			return bad("Malformed Contact")
		}
		if c.Address.Wildcard {
			// RFC 3261 §10.3 step 6: "*" only to remove all bindings.
			if req.Method != sip.REGISTER || len(contacts) != 1 {
				return bad("Bad Contact Wildcard")
			}
			continue
		}
		// Escaped headers are legal in a registered Contact (RFC 4475
		// §3.3.14) but not in a remote target, which the switch would
		// copy into the Request-URI of later requests.
		if !validAddressURI(&c.Address, req.Method == sip.REGISTER) {
			return bad("Malformed Contact")
		}
	}
	return nil
}

func checkMisc(req *sip.Request) error {
	dates := req.GetHeaders("date")
	switch {
	case len(dates) > 1:
		return bad("Duplicate Date")
	case len(dates) == 1:
		// RFC 3261 §20.17: rfc1123-date, always in GMT (RFC 4475 §3.1.2.12).
		v := trimLWS(dates[0].Value())
		if !strings.HasSuffix(v, " GMT") {
			return bad("Bad Date")
		}
		if _, err := time.Parse(time.RFC1123, v); err != nil {
			return bad("Bad Date")
		}
	}
	exp := req.GetHeaders("expires")
	switch {
	case len(exp) > 1:
		return bad("Duplicate Expires")
	case len(exp) == 1:
		// Any number of digits: RFC 3261 §20.19 caps large values rather
		// than refusing them.
		if !IsDigits(trimLWS(exp[0].Value())) {
			return bad("Bad Expires")
		}
	}
	return nil
}

func checkMaxForwards(req *sip.Request) error {
	mf := req.GetHeaders("max-forwards")
	switch {
	case len(mf) == 0:
		return nil // RFC 2543 peers omit it; nothing here depends on it
	case len(mf) > 1:
		return bad("Duplicate Max-Forwards")
	}
	v, ok := mf[0].(*sip.MaxForwardsHeader)
	if !ok {
		return bad("Malformed Max-Forwards")
	}
	if *v == 0 {
		return ErrTooManyHops
	}
	return nil
}
