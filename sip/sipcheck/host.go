package sipcheck

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// The configuration and the request checks share the host rule: an
// IPv6 address is one without a zone, and what the configuration takes as
// a host name the switch also takes from the wire, where validHost adds
// the looser names real peers send.

// ValidHost reports whether h is a host the switch can be configured with:
// an IPv4 address, an IPv6 address (bare, without a zone) or a DNS name of
// RFC 1123 labels (letters, digits and inner hyphens, 1–63 characters
// each, at most 253 in all, one trailing dot allowed).
func ValidHost(h string) bool {
	if strings.IndexByte(h, ':') >= 0 {
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' || !allIn(label, dnsLabelSet) {
			return false
		}
	}
	return true
}

var dnsLabelSet = newCharset("-")

// validHost is the host rule for received messages: ValidHost's IPv6
// addresses, bracketed as in URIs or bare as sipgo stores them for Via,
// and any host name of letters, digits, '-', '.' and '_' (which real
// peers send, though RFC 1123 does not allow all of them).
func validHost(h string) bool {
	if inner, ok := strings.CutPrefix(h, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		return ok && strings.IndexByte(inner, ':') >= 0 && ValidHost(inner)
	}
	if strings.IndexByte(h, ':') >= 0 {
		return ValidHost(h)
	}
	return h != "" && allIn(h, hostSet)
}

// ErrNotSIPURI is what ParseSIPURI wraps when it refuses a URI.
var ErrNotSIPURI = errors.New("not a sip: or sips: URI the switch can send requests to")

// ParseSIPURI parses s, a sip: or sips: URI written in the configuration
// (a static contact), with sipgo's parser and holds it to the rules of a
// Request-URI the switch sends: a host ValidHost accepts, a port 1–65535
// when there is one, a user part and parameters of the RFC 3261 grammar
// and no headers (§19.1.1). sipgo must write the result back as s was
// written, so that nothing was dropped on the way in.
func ParseSIPURI(s string) (sip.Uri, error) {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, fmt.Errorf("%w: %w", ErrNotSIPURI, err)
	}
	host, bracketed := strings.CutPrefix(u.Host, "[")
	if bracketed {
		host = strings.TrimSuffix(host, "]")
	}
	switch {
	case u.Scheme != "sip" && u.Scheme != "sips":
		return sip.Uri{}, fmt.Errorf("%w: the scheme is not sip or sips", ErrNotSIPURI)
	case !validSIPURI(&u, false) || !ValidHost(host):
		return sip.Uri{}, fmt.Errorf("%w: a part is not of the RFC 3261 grammar", ErrNotSIPURI)
	case !strings.EqualFold(u.String(), s): // the scheme is folded to lower case
		return sip.Uri{}, fmt.Errorf("%w: it does not read back as %s", ErrNotSIPURI, u.String())
	}
	return u, nil
}
