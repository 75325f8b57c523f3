package digest

import (
	"fmt"
	"strings"
)

// maxParams bounds the work spent on a hostile header; a real one has ten.
const maxParams = 32

// parseCredentials splits a "Digest" credentials value (RFC 3261 §25.1
// digest-response) into lower-cased parameter names and unquoted values.
// A repeated parameter is refused, as which one counts would be ambiguous;
// names in any case, tabs, empty list elements and unquoted values are
// tolerated because phones send them.
func parseCredentials(header string) (map[string]string, error) {
	s := strings.TrimLeft(header, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 || !strings.EqualFold(s[:i], "Digest") {
		return nil, ErrNoCredentials
	}
	s = s[i:]
	p := make(map[string]string, 10)
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return p, nil
		}
		if len(p) == maxParams {
			return nil, fmt.Errorf("%w: too many parameters", ErrMalformed)
		}
		n := 0
		for n < len(s) && isTokenChar(s[n]) {
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: expected a parameter name", ErrMalformed)
		}
		name := strings.ToLower(s[:n])
		s = strings.TrimLeft(s[n:], " \t")
		if s == "" || s[0] != '=' {
			return nil, fmt.Errorf("%w: expected '=' after %s", ErrMalformed, name)
		}
		s = strings.TrimLeft(s[1:], " \t")
		var value string
		if s != "" && s[0] == '"' {
			v, rest, ok := unquote(s)
			if !ok {
				return nil, fmt.Errorf("%w: unterminated %s", ErrMalformed, name)
			}
			value, s = v, rest
		} else {
			n = 0
			for n < len(s) && s[n] > ' ' && s[n] != ',' && s[n] != '"' && s[n] != 0x7f {
				n++
			}
			if n == 0 {
				return nil, fmt.Errorf("%w: empty %s", ErrMalformed, name)
			}
			value, s = s[:n], s[n:]
		}
		if _, dup := p[name]; dup {
			return nil, fmt.Errorf("%w: repeated %s", ErrMalformed, name)
		}
		p[name] = value
		s = strings.TrimLeft(s, " \t")
		if s != "" && s[0] != ',' {
			return nil, fmt.Errorf("%w: expected ',' after %s", ErrMalformed, name)
		}
	}
}

// unquote reads the quoted-string at the start of s, resolving
// quoted-pairs, and returns its value and the rest of s.
func unquote(s string) (value, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			i++
			if i == len(s) {
				return "", "", false
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-.!%*_+`'~", c) >= 0
}
