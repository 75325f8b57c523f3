package sipcheck

import (
	"errors"
	"strings"
	"testing"
)

func TestValidHost(t *testing.T) {
	tests := []struct {
		host         string
		config, wire bool // ValidHost, validHost
	}{
		{"example.com", true, true},
		{"example.com.", true, true},
		{"192.0.2.1", true, true},
		{"2001:db8::1", true, true},
		{"::ffff:192.0.2.1", true, true},
		{"[2001:db8::1]", false, true}, // brackets belong to URIs
		{"my_host.lan", false, true},   // real peers send it; RFC 1123 has no '_'
		{"-a.example.com", false, true},
		{"a..example.com", false, true},
		{strings.Repeat("a", 64) + ".com", false, true},
		{strings.Repeat("a.", 127) + "com", false, true}, // 257 characters
		{"fe80::1%eth0", false, false},
		{"[fe80::1%eth0]", false, false},
		{"[192.0.2.1]", false, false},
		{"[2001:db8::1", false, false},
		{"exa mple.com", false, false},
		{"example.com>", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := ValidHost(tt.host); got != tt.config {
			t.Errorf("ValidHost(%q) = %v", tt.host, got)
		}
		if got := validHost(tt.host); got != tt.wire {
			t.Errorf("validHost(%q) = %v", tt.host, got)
		}
	}
}

func TestParseSIPURI(t *testing.T) {
	good := map[string]string{ // URI → host as sipgo keeps it
		"sip:ken@192.0.2.20:5060":                 "192.0.2.20",
		"sip:ken@192.0.2.20:5060;transport=tcp":   "192.0.2.20",
		"sips:[2001:db8::1]:5061":                 "[2001:db8::1]",
		"SIP:ken@pbx.example.com":                 "pbx.example.com",
		"sip:ken:secret@host":                     "host",
		"sip:a%20b@host;lr":                       "host",
		"sip:+1-555@gw.example.com;user=phone":    "gw.example.com",
		"sip:a@host;transport=tcp;maddr=10.0.0.1": "host",
	}
	for s, host := range good {
		u, err := ParseSIPURI(s)
		if err != nil || u.Host != host {
			t.Errorf("ParseSIPURI(%q) = host %q, %v; want %s", s, u.Host, err, host)
		}
	}
	for _, s := range []string{
		"", "sip:", "tel:+15551234", "http://192.0.2.1", "sip://a@host",
		"sip:@host", "sip:a@b@host", "sip:a b@host", "<sip:a@host>",
		"sip:a@host:0", "sip:a@host:99999", "sip:a@host:-1", "sip:a@1.2.3.4:",
		"sip:a@host?subject=x", "sip:a@host;lr=", "sip:a@my_host", "sip:a@-host",
		"sip:a@[1.2.3.4]", "sip:a@::1", "sip:a@[::1]junk", "sip:a@[fe80::1%25eth0]",
	} {
		if u, err := ParseSIPURI(s); !errors.Is(err, ErrNotSIPURI) {
			t.Errorf("ParseSIPURI(%q) = %+v, %v; want ErrNotSIPURI", s, u, err)
		}
	}
}
