package config

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHTTPCredentials(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	main := "server:\n  domain: contoso.com\n  http_listen: 0.0.0.0:8080\n" +
		"http:\n  users:\n    - {name: ops, password_hash: '" + string(hash) + "', role: Admin}\n" +
		"  tokens:\n    - {name: grafana, token: 0123456789abcdefghijklmn, role: viewer}\n"
	c, err := parse(main, "")
	if err != nil {
		t.Fatalf("valid credentials refused:\n%v", err)
	}
	if len(c.HTTP.Users) != 1 || c.HTTP.Users[0].Role != RoleAdmin || len(c.HTTP.Tokens) != 1 || c.HTTP.Tokens[0].Role != RoleViewer {
		t.Errorf("http = %+v", c.HTTP)
	}
}

func TestHTTPProblems(t *testing.T) {
	const head = "server:\n  domain: contoso.com\n" // lines 1–2
	tests := []struct {
		name string
		main string
		want []want
	}{
		{"open API on every interface", head + "  http_listen: 0.0.0.0:8080\n",
			[]want{{"", 3, "http_listen 0.0.0.0:8080 is reachable from other hosts but the admin API has no credentials: add http.users"}}},
		{"open API on an empty host", head + "  http_listen: :8080\n",
			[]want{{"", 3, "reachable from other hosts"}}},
		{"open API on a LAN address", head + "  http_listen: 192.0.2.1:8080\n",
			[]want{{"", 3, "reachable from other hosts"}}},
		{"http_listen port out of range", head + "  http_listen: 127.0.0.1:99999\n",
			[]want{{"", 3, `http_listen "127.0.0.1:99999" has a port out of range: use a port 1–65535`}}},
		{"sip_listen port out of range", head + "  sip_listen: [udp://0.0.0.0:99999]\n",
			[]want{{"", 3, `sip_listen entry "udp://0.0.0.0:99999" has a port out of range`}}},
		{"bad credentials", head + `http:
  users:
    - {name: ops, password_hash: secret, role: admin}
    - {name: OPS, password_hash: secret, role: root}
  tokens:
    - {name: ci, token: short, role: viewer}
    - {name: "a:b", token: 0123456789abcdefghijklmn, role: admin}
    - {name: ci2, token: 0123456789abcdefghijklmn, role: admin}
    - {name: ci3}
`, []want{
			{"", 5, "password_hash of ops is not a bcrypt hash: paste what `parkswitch passwd` prints"},
			{"", 6, `http name "OPS" is already used at line 5`},
			{"", 6, `role "root" is unknown: use admin`},
			{"", 6, "password_hash of OPS is not a bcrypt hash"},
			{"", 8, "token of ci is shorter than 24 characters"},
			{"", 9, `http name "a:b" is empty or has a colon`},
			{"", 10, "token of ci2 is the same as the one at line 9"},
			{"", 11, "http token has no token"},
			{"", 11, "http token has no role"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.main, "")
			checkProblems(t, err, tt.want)
		})
	}
}

func TestLoopbackWithoutCredentials(t *testing.T) {
	for _, l := range []string{"127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080", "localhost:8080"} {
		if _, err := parse("server:\n  domain: contoso.com\n  http_listen: \""+l+"\"\n", ""); err != nil {
			t.Errorf("%s without credentials refused: %v", l, err)
		}
	}
}

func TestInboundOnlyTrunk(t *testing.T) {
	c, err := parse("server:\n  domain: contoso.com\ntrunks:\n  - {name: in1, address: 192.0.2.10:5060}\n  - {name: in2, address: 192.0.2.11:5060}\n  - {name: out, address: 192.0.2.12:5060, outbound_prefix: \"9\"}\n", "")
	if err != nil {
		t.Fatalf("inbound-only trunks refused:\n%v", err)
	}
	if len(c.Trunks) != 3 || c.Trunks[0].OutboundPrefix != "" || c.Trunks[2].OutboundPrefix != "9" {
		t.Errorf("trunks = %+v", c.Trunks)
	}
}

// TestYAMLSyntaxError: a file that is not YAML gets one problem, at the
// line of the mistake, and none of the checks that would only see defaults.
func TestYAMLSyntaxError(t *testing.T) {
	const good = "server:\n  domain: contoso.com\n  http_listen: 127.0.0.1:8080\npark:\n  park_user: park\n  retrieve_prefix: \"\"\nusers:\n  - id: 1001@contoso.com\n    password: x\n"
	lines := strings.Split(good, "\n")
	tests := []struct {
		name string
		line int    // 1-based line replaced
		with string // its new text
		want want
	}{
		{"unclosed flow sequence", 3, "  sip_listen: [udp://0.0.0.0:5060", want{"", 3, "did not find expected ',' or ']'"}},
		{"value continued on a key line", 6, "   retrieve_prefix: \"\"", want{"", 6, "mapping values are not allowed"}},
		{"indentation slip", 5, "   park_user: park", want{"", 6, "did not find expected key"}},
		{"colon in a value", 2, "  domain: contoso.com: x", want{"", 2, "mapping values are not allowed"}},
		{"tab", 9, "\tpassword: x", want{"", 9, "found a tab character"}},
		{"list item out of place", 7, "  - users", want{"", 7, "not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := append([]string(nil), lines...)
			l[tt.line-1] = tt.with
			_, err := parse(strings.Join(l, "\n"), "")
			checkProblems(t, err, []want{tt.want})
		})
	}
	_, err := parse("server\n", "")
	checkProblems(t, err, []want{{"", 1, "the top level must be a mapping"}})
}
