package policy

import "strings"

// ParseCode reads the park code a dialed string retrieves: prefix followed
// by 2 to 4 digits naming a code in MinPickupCode–MaxPickupCode. The switch
// routes by it and config validation finds clashes with it, so both agree on
// what dialing a string does. Leading zeros count as digits ("010" is 10).
func ParseCode(dialed, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(dialed, prefix)
	if !ok || len(rest) < 2 || len(rest) > 4 {
		return 0, false
	}
	code := 0
	for i := 0; i < len(rest); i++ {
		d := rest[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		code = code*10 + int(d-'0')
	}
	if code < MinPickupCode || code > MaxPickupCode {
		return 0, false
	}
	return code, true
}
