package policy

import "testing"

func TestParseCode(t *testing.T) {
	tests := []struct {
		dialed, prefix string
		code           int
		ok             bool
	}{
		{"10", "", 10, true},
		{"9999", "", 9999, true},
		{"70", "*", 0, false}, // prefix missing
		{"*70", "*", 70, true},
		{"*9999", "*", 9999, true},
		{"9", "", 0, false},      // one digit: below the range
		{"*9", "*", 0, false},    // one digit after the prefix
		{"09", "", 0, false},     // two digits, value below 10
		{"010", "", 10, true},    // leading zero
		{"0010", "", 10, true},   // four digits
		{"00010", "", 0, false},  // five digits, though the value fits
		{"10000", "", 0, false},  // above the range
		{"", "", 0, false},       // nothing dialed
		{"*", "*", 0, false},     // only the prefix
		{"1a", "", 0, false},     // not digits
		{"+12", "", 0, false},    // a sign is not a digit
		{" 12", "", 0, false},    // nor is a space
		{"١٢", "", 0, false},     // Arabic-Indic digits are not ASCII digits
		{"**12", "**", 12, true}, // longer prefix
		{"#12", "*", 0, false},   // other prefix
	}
	for _, tt := range tests {
		code, ok := ParseCode(tt.dialed, tt.prefix)
		if code != tt.code || ok != tt.ok {
			t.Errorf("ParseCode(%q, %q) = %d, %v; want %d, %v", tt.dialed, tt.prefix, code, ok, tt.code, tt.ok)
		}
	}
}
