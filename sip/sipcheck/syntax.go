package sipcheck

import (
	"strings"
	"unicode/utf8"
)

// charset is a byte class from the RFC 3261 §25.1 grammar.
type charset [256]bool

// newCharset returns the alphanumerics plus extra.
func newCharset(extra string) *charset {
	var c charset
	for b := '0'; b <= '9'; b++ {
		c[b] = true
	}
	for b := 'a'; b <= 'z'; b++ {
		c[b] = true
		c[b-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		c[extra[i]] = true
	}
	return &c
}

const (
	markChars     = "-_.!~*'()"
	tokenExtra    = "-.!%*_+`'~"
	userExtra     = markChars + "&=+$,;?/"
	passwordExtra = markChars + "&=+$,"
	paramExtra    = markChars + "[]/:&+$"
	headerExtra   = markChars + "[]/?:+$"
	telExtra      = markChars + "[]/:&+$;=#"
	wordExtra     = tokenExtra + "()<>:\\\"/[]?{}"
	hostExtra     = "-._" // '_' is not in the RFC grammar but real host names carry it
	lwsChars      = " \t"
)

var (
	tokenSet    = newCharset(tokenExtra)
	wordSet     = newCharset(wordExtra)
	userSet     = newCharset(userExtra)
	passwordSet = newCharset(passwordExtra)
	paramSet    = newCharset(paramExtra)
	headerSet   = newCharset(headerExtra)
	telSet      = newCharset(telExtra)
	hostSet     = newCharset(hostExtra)
)

func isToken(s string) bool { return s != "" && allIn(s, tokenSet) }

func allIn(s string, set *charset) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}

// escapedIn reports whether s consists of bytes from set and well-formed
// %HH escapes only.
func escapedIn(s string, set *charset) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
			continue
		}
		if !set[c] {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// IsDigits reports whether s is 1*DIGIT (RFC 5234): ASCII digits only.
func IsDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validQuotedContent reports whether s, a display name as sipgo stores it
// (without the surrounding quotes), is the inside of a well-formed
// quoted-string. sipgo writes display names back between quotes whatever
// form they arrived in, so anything else would corrupt forwarded headers.
func validQuotedContent(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
			// quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
			if i >= len(s) || s[i] == '\r' || s[i] == '\n' || s[i] > 0x7f {
				return false
			}
		case c == '"':
			return false
		case c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f):
		default:
			return false
		}
	}
	return true
}

// scanQuoted returns the length of the quoted-string at the start of s
// (which begins with '"'), or -1 when it is unterminated.
func scanQuoted(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

func trimLWS(s string) string { return strings.Trim(s, lwsChars) }

// indexUnquoted returns the index of the first c in s outside a
// quoted-string, or -1.
func indexUnquoted(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case c:
			return i
		case '"':
			n := scanQuoted(s[i:])
			if n < 0 {
				return -1
			}
			i += n - 1
		}
	}
	return -1
}

// firstElement returns s up to its first comma outside quotes and angle
// brackets: one entry of a comma-separated Contact list.
func firstElement(s string) string {
	inAngle := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			if inAngle {
				continue
			}
			n := scanQuoted(s[i:])
			if n < 0 {
				return s
			}
			i += n - 1
		case '<':
			inAngle = true
		case '>':
			inAngle = false
		case ',':
			if !inAngle {
				return s[:i]
			}
		}
	}
	return s
}

// validAddress checks the raw text of one To, From or Contact value
// against RFC 3261 §20.10/§25.1, for what sipgo's parser lets through:
// a display name must be tokens or one quoted-string, nothing but the URI
// may sit between the angle brackets, and an addr-spec without brackets
// must not contain a comma, question mark or white space.
func validAddress(s string, contact bool) bool {
	s = trimLWS(s)
	if contact && s == "*" {
		return true
	}
	laquot := indexUnquoted(s, '<')
	if laquot < 0 {
		end := strings.IndexByte(s, ';')
		if end < 0 {
			end = len(s)
		}
		uri := strings.TrimRight(s[:end], lwsChars)
		return uri != "" && !strings.ContainsAny(uri, " \t,?<>\"")
	}
	if !validDisplayName(trimLWS(s[:laquot])) {
		return false
	}
	rest := s[laquot+1:]
	raquot := strings.IndexByte(rest, '>')
	if raquot <= 0 || strings.ContainsAny(rest[:raquot], " \t<\"") {
		return false
	}
	after := trimLWS(rest[raquot+1:])
	return after == "" || after[0] == ';'
}

// validDisplayName accepts *(token LWS) / quoted-string.
func validDisplayName(d string) bool {
	if d == "" {
		return true
	}
	if d[0] == '"' {
		return scanQuoted(d) == len(d)
	}
	for f := range strings.FieldsFuncSeq(d, func(r rune) bool { return r == ' ' || r == '\t' }) {
		if !isToken(f) {
			return false
		}
	}
	return true
}
