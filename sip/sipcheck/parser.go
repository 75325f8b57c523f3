package sipcheck

import (
	"maps"

	"github.com/emiago/sipgo/sip"
)

// HeadersParser returns sipgo's default header parsers with stricter To,
// From and Contact parsing. A value that sipgo would accept but whose raw
// text breaks the name-addr/addr-spec grammar (a display name that is
// neither tokens nor a quoted-string, an unbracketed URI with '?' or ',',
// white space inside <>) is kept as an untyped header under its canonical
// name instead of failing the whole message: Request then refuses it with
// 400, whereas a parse error would make sipgo drop the datagram or close
// the TCP connection. sipgo itself still reads such a header lazily, so
// transaction handling before Request runs is unaffected.
func HeadersParser() sip.HeadersParser {
	p := maps.Clone(sip.DefaultHeadersParser()) // the default map is shared: never mutate it
	for _, spec := range []struct {
		names     []string
		canonical string
		contact   bool
	}{
		{[]string{"to", "t"}, "To", false},
		{[]string{"from", "f"}, "From", false},
		{[]string{"contact", "m"}, "Contact", true},
	} {
		for _, n := range spec.names {
			if def, ok := p[n]; ok {
				p[n] = strictAddress(def, spec.canonical, spec.contact)
			}
		}
	}
	return p
}

// NewParser returns a sipgo parser using HeadersParser, for
// sipgo.WithUserAgentParser.
func NewParser() *sip.Parser {
	return sip.NewParser(sip.WithHeadersParsers(HeadersParser()))
}

func strictAddress(def sip.HeaderParser, canonical string, contact bool) sip.HeaderParser {
	return func(name []byte, text string) (sip.Header, error) {
		elem := text
		if contact {
			// sipgo calls again with the rest after each comma.
			elem = firstElement(text)
		}
		if validAddress(elem, contact) {
			h, err := def(name, text)
			if err == nil {
				trimParamLWS(h)
			}
			return h, err
		}
		// Demote only what sipgo can parse on its own; otherwise keep
		// sipgo's verdict.
		if _, err := def(name, elem); err != nil {
			return def(name, text)
		}
		return sip.NewHeader(canonical, text), nil
	}
}

// trimParamLWS removes the linear white space RFC 3261 allows around ";" and
// "=" (§25.1, SEMI and EQUAL), which sipgo keeps in parameter names and
// values and after an unbracketed URI's host. Left in, "; tag = x" has no
// "tag" parameter: the transaction layer cannot key an RFC 2543 request
// (RFC 4475 §3.1.1.1 is answered 400) and dialogs do not match.
func trimParamLWS(h sip.Header) {
	var (
		params *sip.HeaderParams
		uri    *sip.Uri
	)
	switch h := h.(type) {
	case *sip.FromHeader:
		params, uri = &h.Params, &h.Address
	case *sip.ToHeader:
		params, uri = &h.Params, &h.Address
	case *sip.ContactHeader:
		params, uri = &h.Params, &h.Address
	default:
		return
	}
	uri.Host = trimLWS(uri.Host)
	out := (*params)[:0]
	for _, kv := range *params {
		kv.K, kv.V = trimLWS(kv.K), trimLWS(kv.V)
		if kv.K != "" { // an empty parameter is what sipgo makes of the blanks before ";"
			out = append(out, kv)
		}
	}
	*params = out
}
