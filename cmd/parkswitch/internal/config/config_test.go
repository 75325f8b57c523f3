package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parkswitch/parkswitch/configs"
	"github.com/parkswitch/parkswitch/policy"
)

// files returns a readFile serving contents by name.
func files(m map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		s, ok := m[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
}

// parkPolicy lets group staff park on 500–599; Global keeps 10–99.
const parkPolicy = `policies:
  - identity: Park
    allow_call_park: true
    pickup_range_start: 500
    pickup_range_end: 599
assignments:
  groups:
    - {group: staff, policy: Park, rank: 1}
`

func parse(main, policies string) (*Config, error) {
	return Parse("parkswitch.yaml", []byte(main), files(map[string]string{"policies.yaml": policies}))
}

func TestEmbeddedDefault(t *testing.T) {
	data, err := fs.ReadFile(configs.FS, "parkswitch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("parkswitch.yaml", data, func(name string) ([]byte, error) { return fs.ReadFile(configs.FS, name) })
	if err != nil {
		t.Fatalf("embedded default is invalid:\n%v", err)
	}
	if c.Server.Domain != "contoso.com" || len(c.Users) != 5 || len(c.Trunks) != 0 {
		t.Errorf("embedded default = %+v", c)
	}
	wantNames := []string{"Alice Reception", "Bob Sales", "Carol Support", "Dave Warehouse", "Erin Expert"}
	for i, u := range c.Users {
		n := string(rune('1' + i))
		if u.ID != "100"+n+"@contoso.com" || u.Password != "demo100"+n || u.DisplayName != wantNames[i] || !reflect.DeepEqual(u.Groups, []string{"staff"}) {
			t.Errorf("user %d = %+v", i, u)
		}
		if p := c.Policies.Resolve(u.ID, u.Groups); p.Identity != "DemoPark" || !p.AllowCallPark || p.PickupRangeStart != 10 || p.PickupRangeEnd != 99 || p.ParkTimeoutSeconds != 300 {
			t.Errorf("%s resolves to %+v", u.ID, p)
		}
	}
	if p := c.Policies.Resolve("someone@contoso.com", nil); p.Identity != policy.GlobalIdentity || p.AllowCallPark {
		t.Errorf("Global = %+v", p)
	}
	// The file states every default explicitly: it must agree with the code.
	wantDefaults, err := parse("server:\n  domain: contoso.com\n", "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Server, wantDefaults.Server) || c.Media != wantDefaults.Media || c.Park != wantDefaults.Park {
		t.Errorf("embedded file and defaults differ:\n%+v %+v %+v\n%+v %+v %+v", c.Server, c.Media, c.Park, wantDefaults.Server, wantDefaults.Media, wantDefaults.Park)
	}
}

func TestDefaults(t *testing.T) {
	c, err := parse("server:\n  domain: contoso.com\n", "")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Path: "parkswitch.yaml",
		Server: Server{
			Domain:     "contoso.com",
			SIPListen:  []Listen{{"udp", "0.0.0.0:5060"}, {"tcp", "0.0.0.0:5060"}},
			HTTPListen: "127.0.0.1:8080",

			DigestAlgorithms: []string{"MD5", "SHA-256"},
		},
		Media: Media{RTPPortMin: 20000, RTPPortMax: 29999, RTPTimeoutSeconds: 60},
		Park:  Park{ParkUser: "park", DTMFCode: "#72", RingbackSeconds: 30, MaxRingbacks: 3, PolicyFile: "policies.yaml", Announce: true},
	}
	if !reflect.DeepEqual(c.Server, want.Server) || c.Media != want.Media || c.Park != want.Park || c.Path != want.Path {
		t.Errorf("defaults = %+v %+v %+v, want %+v %+v %+v", c.Server, c.Media, c.Park, want.Server, want.Media, want.Park)
	}
	if got := c.Policies.Policies(); len(got) != 1 || got[0] != policy.Default(policy.GlobalIdentity) {
		t.Errorf("policies = %+v", got)
	}
	if c.Media.RTPTimeout().Seconds() != 60 || c.Park.Ringback().Seconds() != 30 {
		t.Error("durations")
	}
	if want := (Security{MaxConnections: 10000, MaxConnectionsPerIP: 100, BanAfter: 10, BanWindowSeconds: 60, BanSeconds: 600, RetrieveMisses: 10, OverloadWaitMS: 40}); c.Security != want {
		t.Errorf("security defaults = %+v, want %+v", c.Security, want)
	}
	if c.Security.BanWindow().Seconds() != 60 || c.Security.BanTime().Seconds() != 600 || c.Security.OverloadWait().Milliseconds() != 40 {
		t.Error("security durations")
	}
	if DefaultSIPListen[0].String() != "udp://0.0.0.0:5060" {
		t.Errorf("Listen.String() = %s", DefaultSIPListen[0])
	}
}

func TestValidValues(t *testing.T) {
	main := `server:
  domain: pbx.example.org
  sip_listen: ["UDP://127.0.0.1:5070", "tcp://[::1]:5070", "udp://:5080"]
  http_listen: "[::1]:9000"
  advertise_ip: "2001:db8::0001"
media:
  rtp_port_min: 1024
  rtp_port_max: 1027
  rtp_timeout_seconds: 0
park:
  park_user: Park.Orbit
  retrieve_prefix: "*5#"
  dtmf_code: "*9*9"
  ringback_seconds: 5
  max_ringbacks: 10
  fallback: "2001"
users:
  - id: ken.myer@pbx.example.org
    extension: "2001"
    display_name: Ken Myer
    ha1: 0123456789ABCDEF0123456789abcdef
    groups: [staff, sales]
    contact: "sip:ken@192.0.2.20:5060;transport=tcp"
  - id: 42@pbx.example.org
    password: x
    contact: sips:[2001:db8::1]:5061
trunks:
  - name: carrier
    address: 192.0.2.10:5060
    outbound_prefix: "9"
  - name: gateway
    address: "[2001:db8::2]:5060"
    transport: TCP
    outbound_prefix: "0"
`
	c, err := parse(main, parkPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Listen{{"udp", "127.0.0.1:5070"}, {"tcp", "[::1]:5070"}, {"udp", ":5080"}}; !reflect.DeepEqual(c.Server.SIPListen, want) {
		t.Errorf("SIPListen = %v", c.Server.SIPListen)
	}
	if c.Server.AdvertiseIP != "2001:db8::1" {
		t.Errorf("AdvertiseIP = %q", c.Server.AdvertiseIP)
	}
	if c.Users[0].HA1 != "0123456789abcdef0123456789abcdef" {
		t.Errorf("HA1 not normalized: %q", c.Users[0].HA1)
	}
	if c.Trunks[0].Transport != "udp" || c.Trunks[1].Transport != "tcp" || c.Trunks[1].Line != 31 {
		t.Errorf("trunks = %+v", c.Trunks)
	}
	if c.Park.DTMFCode != "*9*9" {
		t.Errorf("DTMFCode = %q", c.Park.DTMFCode)
	}
	if c.Users[1].Line != 24 || c.Users[1].Name() != "42" {
		t.Errorf("user = %+v", c.Users[1])
	}
}

// want is an expected problem: file (empty: the main file), line and a part
// of the message.
type want struct {
	file string
	line int
	msg  string
}

func checkProblems(t *testing.T, err error, wants []want) {
	t.Helper()
	var ps policy.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error = %v, want policy.Problems", err)
	}
	if len(ps) != len(wants) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(wants), err)
	}
	for i, w := range wants {
		if w.file == "" {
			w.file = "parkswitch.yaml"
		}
		if ps[i].File != w.file || ps[i].Line != w.line || !strings.Contains(ps[i].Msg, w.msg) {
			t.Errorf("problem %d = %q\n  want %s:%d: …%s…", i, ps[i].Error(), w.file, w.line, w.msg)
		}
	}
}

func TestProblems(t *testing.T) {
	const head = "server:\n  domain: contoso.com\n" // lines 1–2
	tests := []struct {
		name     string
		main     string
		policies string
		want     []want
	}{
		{"unknown top-level key", head + "serverr: {}\n", "",
			[]want{{"", 3, `unknown key "serverr" in the top level: did you mean server?`}}},
		{"unknown key in a section", head + "  sip_listn: []\n", "",
			[]want{{"", 3, `unknown key "sip_listn" in server: did you mean sip_listen? Valid keys: domain, sip_listen, http_listen, advertise_ip, digest_algorithms`}}},
		{"unknown key in park", head + "park:\n  timeout: 3\n", "",
			[]want{{"", 4, `unknown key "timeout" in park: remove it or use one of park_user, retrieve_prefix, dtmf_code, ringback_seconds, max_ringbacks, fallback, policy_file, announce, prompts_dir`}}},
		{"domain missing", "server:\n  http_listen: 127.0.0.1:8080\n", "",
			[]want{{"", 2, "server.domain is missing: add domain: <your SIP domain> under server"}}},
		{"server missing", "media: {}\n", "",
			[]want{{"", 1, "server.domain is missing"}}},
		{"empty file", "", "",
			[]want{{"", 0, "server.domain is missing"}}},
		{"domain not a host", "server:\n  domain: contoso com\n", "",
			[]want{{"", 2, `domain "contoso com" is not a host name or IP address`}}},
		{"domain wrong type", "server:\n  domain: [a]\n", "",
			[]want{{"", 2, "domain must be a single value, not a list"}}},
		{"sip_listen entries", head + `  sip_listen:
    - tls://0.0.0.0:5061
    - ws://0.0.0.0:8088
    - udp:0.0.0.0:5060
    - udp://0.0.0.0
    - tcp://0.0.0.0:70000
    - udp://0.0.0.0:5060
    - UDP://0.0.0.0:5060
    - quic://0.0.0.0:5060
`, "", []want{
			{"", 4, "a tls:// listener needs a certificate: set server.tls_cert and server.tls_key"},
			{"", 5, "sip_listen transport ws is not supported yet"},
			{"", 6, `sip_listen entry "udp:0.0.0.0:5060" has no transport: write udp://udp:0.0.0.0:5060`},
			{"", 7, `sip_listen entry "udp://0.0.0.0" does not end in host:port`},
			{"", 8, `sip_listen entry "tcp://0.0.0.0:70000" has a port out of range: use a port 1–65535`},
			{"", 10, "sip_listen entry UDP://0.0.0.0:5060 is listed twice (line 9): remove one"},
			{"", 11, `sip_listen transport "quic" is unknown`},
		}},
		{"sip_listen empty", head + "  sip_listen: []\n", "",
			[]want{{"", 3, "sip_listen is empty: list at least one"}}},
		{"sip_listen not a list", head + "  sip_listen: udp://0.0.0.0:5060\n", "",
			[]want{{"", 3, "sip_listen must be a list"}}},
		{"http_listen", head + "  http_listen: localhost\n", "",
			[]want{{"", 3, `http_listen "localhost" is not host:port: write e.g. 127.0.0.1:8080`}}},
		{"http_listen port 0", head + "  http_listen: 127.0.0.1:0\n", "",
			[]want{{"", 3, "http_listen"}}},
		{"advertise_ip not an IP", head + "  advertise_ip: pbx.contoso.com\n", "",
			[]want{{"", 3, `advertise_ip "pbx.contoso.com" is not an IP address`}}},
		{"advertise_ip unspecified", head + "  advertise_ip: 0.0.0.0\n", "",
			[]want{{"", 3, "advertise_ip 0.0.0.0 cannot be advertised"}}},
		{"digest algorithm unknown", head + "  digest_algorithms: [MD5, SHA-512]\n", "",
			[]want{{"", 3, `digest algorithm "SHA-512" is not supported: use MD5 or SHA-256`}}},
		{"digest algorithm twice", head + "  digest_algorithms: [md5, MD5]\n", "",
			[]want{{"", 3, "digest algorithm MD5 is listed twice"}}},
		{"digest algorithms empty", head + "  digest_algorithms: []\n", "",
			[]want{{"", 3, "digest_algorithms is empty"}}},
		{"rtp ports out of range", head + "media:\n  rtp_port_min: 1023\n  rtp_port_max: 65536\n", "", []want{
			{"", 4, "rtp_port_min 1023 is out of range: use 1024–65535"},
			{"", 5, "rtp_port_max 65536 is out of range: use 1024–65535"},
		}},
		{"rtp ports reversed", head + "media:\n  rtp_port_min: 30000\n  rtp_port_max: 30000\n", "",
			[]want{{"", 5, "rtp_port_max 30000 is not more than rtp_port_min 30000"}}},
		{"rtp range too small", head + "media:\n  rtp_port_min: 30000\n  rtp_port_max: 30002\n", "",
			[]want{{"", 5, "the RTP port range 30000–30002 has fewer than 4 ports"}}},
		{"rtp range with the defaulted max", head + "media:\n  rtp_port_min: 29999\n", "",
			[]want{{"", 4, "rtp_port_max 29999 is not more than rtp_port_min 29999"}}},
		{"sip port inside the rtp range", head + "  sip_listen: [udp://0.0.0.0:20000, tcp://0.0.0.0:20002]\n", "",
			[]want{{"", 3, "sip_listen port 20000 is inside the RTP port range 20000–29999: move one of them"}}},
		{"rtp_timeout_seconds", head + "media:\n  rtp_timeout_seconds: 4\n", "",
			[]want{{"", 4, "rtp_timeout_seconds 4 is out of range: use 5–86400, or 0"}}},
		{"rtp_timeout_seconds negative", head + "media:\n  rtp_timeout_seconds: -1\n", "",
			[]want{{"", 4, "rtp_timeout_seconds -1 is out of range"}}},
		{"music_on_hold missing", head + "media:\n  music_on_hold: hold.wav\n", "",
			[]want{{"", 4, "music_on_hold file hold.wav cannot be read (no such file or directory): fix the path"}}},
		{"music_on_hold directory", head + "media:\n  music_on_hold: /\n", "",
			[]want{{"", 4, "music_on_hold / is not a file"}}},
		{"park_user empty", head + "park:\n  park_user: \"\"\n", "",
			[]want{{"", 4, "park_user is empty"}}},
		{"park_user not a token", head + "park:\n  park_user: par k\n", "",
			[]want{{"", 4, `park_user "par k" has characters a SIP URI cannot carry`}}},
		{"park_user is a user", head + "park:\n  park_user: Ken\nusers:\n  - {id: ken@contoso.com, password: x}\n", "",
			[]want{{"", 4, `park_user "Ken" is also user ken@contoso.com (line 6)`}}},
		{"park_user is an extension", head + "park:\n  park_user: \"2001\"\nusers:\n  - {id: ken@contoso.com, extension: \"2001\", password: x}\n", "",
			[]want{{"", 4, `park_user "2001" is also user ken@contoso.com`}}},
		{"park_user is a park code", head + "park:\n  park_user: \"50\"\n", "",
			[]want{{"", 4, "park_user 50 is in the pickup range 10–99 of policy Global (policies.yaml)"}}},
		{"retrieve_prefix", head + "park:\n  retrieve_prefix: \"*a\"\n", "",
			[]want{{"", 4, `retrieve_prefix "*a" can only hold digits, * and #`}}},
		{"dtmf_code", head + "park:\n  dtmf_code: \"#7a\"\n", "",
			[]want{{"", 4, `dtmf_code "#7a" must be 1 to 8 keys of 0-9, * and #`}}},
		{"dtmf_code too long", head + "park:\n  park_user: park\n  dtmf_code: \"*123456789\"\n", "",
			[]want{{"", 5, `dtmf_code "*123456789" must be 1 to 8 keys`}}},
		{"dtmf_code not a string", head + "park:\n  dtmf_code: [\"#\"]\n", "",
			[]want{{"", 4, "dtmf_code"}}},
		{"ringback bounds", head + "park:\n  ringback_seconds: 4\n  max_ringbacks: 0\n", "", []want{
			{"", 4, "ringback_seconds 4 is out of range: use 5–600"},
			{"", 5, "max_ringbacks 0 is out of range: use 1–10"},
		}},
		{"ringback upper bounds", head + "park:\n  ringback_seconds: 601\n  max_ringbacks: 11\n", "", []want{
			{"", 4, "ringback_seconds 601 is out of range"},
			{"", 5, "max_ringbacks 11 is out of range"},
		}},
		{"fallback unknown", head + "park:\n  fallback: operator\n", "",
			[]want{{"", 4, `fallback "operator" is not a configured user`}}},
		{"policy_file empty", head + "park:\n  policy_file: \"\"\n", "",
			[]want{{"", 4, "policy_file is empty"}}},
		{"policy_file missing", head + "park:\n  policy_file: other.yaml\n", "",
			[]want{{"", 4, "policy file other.yaml cannot be read (file does not exist): create it or fix park.policy_file"}}},
		{"user id forms", head + `users:
  - {id: ken, password: x}
  - {id: "@contoso.com", password: x}
  - {id: "ann@", password: x}
  - {id: "b b@contoso.com", password: x}
  - {display_name: nobody}
`, "", []want{
			{"", 4, `id "ken" is not of the form name@domain: write e.g. ken@contoso.com`},
			{"", 5, `id "@contoso.com" is not of the form name@domain: write e.g. name@contoso.com`},
			{"", 6, `id "ann@" is not of the form name@domain`},
			{"", 7, `user part "b b" of id "b b@contoso.com" has characters a SIP URI cannot carry`},
			{"", 8, "user has no id: add the id key"},
			{"", 8, "this user has no password or ha1: add password: <secret>, or ha1: <MD5 of name:contoso.com:password>"},
		}},
		{"user duplicates", head + `users:
  - id: ken@contoso.com
    extension: "2001"
    password: x
  - id: KEN@contoso.com
    password: x
  - id: ken@fabrikam.com
    password: x
  - id: ann@contoso.com
    extension: "2001"
    password: x
  - id: "3001@contoso.com"
    password: x
  - id: bob@contoso.com
    extension: "3001"
    password: x
  - id: eve@contoso.com
    extension: 20a1
    password: x
`, "", []want{
			{"", 7, `id "KEN@contoso.com" is already used by the user at line 4: ids ignore case`},
			{"", 9, `user name "ken" of ken@fabrikam.com is already used by ken@contoso.com (line 4)`},
			{"", 12, "extension 2001 of ann@contoso.com is already used by ken@contoso.com (line 5)"},
			{"", 17, "extension 3001 of bob@contoso.com is the user name of 3001@contoso.com (line 14)"},
			{"", 20, `extension "20a1" must be digits only`},
		}},
		{"credentials", head + `users:
  - id: a@contoso.com
  - id: b@contoso.com
    password: x
    ha1: 0123456789abcdef0123456789abcdef
  - id: c@contoso.com
    ha1: 0123456789abcdef
  - id: d@contoso.com
    ha1: 0123456789abcdef0123456789abcdeg
  - id: e@contoso.com
    password: ""
`, "", []want{
			{"", 4, "user a@contoso.com has no password or ha1: add password: <secret>, or ha1: <MD5 of a:contoso.com:password>"},
			{"", 7, "user b@contoso.com has both password and ha1: keep only one"},
			{"", 9, "ha1 of user c@contoso.com is not 32 hex digits"},
			{"", 11, "ha1 of user d@contoso.com is not 32 hex digits"},
			{"", 13, "user e@contoso.com has no password or ha1"},
		}},
		{"hashed credentials", head + `users:
  - id: a@contoso.com
    ha1_sha256: 0123456789abcdef0123456789abcdef
  - id: b@contoso.com
    password: x
    ha1_sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`, "", []want{
			{"", 5, "ha1_sha256 of user a@contoso.com is not 64 hex digits: write the SHA-256 of a:contoso.com:password in hex"},
			{"", 8, "user b@contoso.com has both password and ha1_sha256: keep only one"},
		}},
		{"security ranges", head + `security:
  ban_after: 0
  ban_window_seconds: 86401
  ban_seconds: -1
  retrieve_misses: 101
  max_bans: 3
  overload_wait_ms: 1001
`, "", []want{
			{"", 4, "ban_after 0 is out of range: use 1–100"},
			{"", 5, "ban_window_seconds 86401 is out of range: use 1–86400"},
			{"", 6, "ban_seconds -1 is out of range: use 1–2592000"},
			{"", 7, "retrieve_misses 101 is out of range: use 1–100"},
			{"", 8, `unknown key "max_bans" in security`},
			{"", 9, "overload_wait_ms 1001 is out of range: use 0–1000"},
		}},
		{"contact and groups", head + `users:
  - id: a@contoso.com
    password: x
    contact: http://192.0.2.1
    groups: [staff, ""]
  - id: b@contoso.com
    password: x
    contact: "sip:"
    groups: staff
    phone: yealink
`, "", []want{
			{"", 6, `contact "http://192.0.2.1" is not a SIP URI: write e.g. sip:a@192.0.2.20:5060`},
			{"", 7, "groups of a@contoso.com has an empty name"},
			{"", 10, `contact "sip:" is not a SIP URI`},
			{"", 11, "groups must be a list"},
			{"", 12, `unknown key "phone" in user`},
		}},
		// What config accepts is what the switch sends to (sipcheck.ParseSIPURI).
		{"contact the switch could not send to", head + `users:
  - {id: a@contoso.com, password: x, contact: "sip:a@192.0.2.1:99999"}
  - {id: b@contoso.com, password: x, contact: "sip:b@192.0.2.1?subject=hi"}
  - {id: c@contoso.com, password: x, contact: "sip:c@d@192.0.2.1"}
  - {id: d@contoso.com, password: x, contact: "sip:d@my_host"}
`, "", []want{
			{"", 4, `contact "sip:a@192.0.2.1:99999" is not a SIP URI`},
			{"", 5, `contact "sip:b@192.0.2.1?subject=hi" is not a SIP URI`},
			{"", 6, `contact "sip:c@d@192.0.2.1" is not a SIP URI`},
			{"", 7, `contact "sip:d@my_host" is not a SIP URI`},
		}},
		{"domain with an IPv6 zone", "server:\n  domain: fe80::1%eth0\n", "",
			[]want{{"", 2, `domain "fe80::1%eth0" is not a host name or IP address`}}},
		{"trunks", head + `trunks:
  - name: carrier
    address: carrier.example.com:5060
    transport: ws
    outbound_prefix: "9a"
  - name: Carrier
    address: 192.0.2.10
    transport: sctp
    outbound_prefix: "0"
  - name: other
    address: 192.0.2.11:0
    outbound_prefix: "0"
  - name: ""
    address: 192.0.2.12:5060
    outbound_prefix: ""
  - {}
`, "", []want{
			{"", 5, `trunk address "carrier.example.com:5060" is not ip:port`},
			{"", 6, "trunk transport ws is not supported yet: use udp, tcp or tls"},
			{"", 7, `outbound_prefix "9a" must be one or more digits`},
			{"", 8, `trunk name "Carrier" is already used by the trunk at line 4`},
			{"", 9, `trunk address "192.0.2.10" is not ip:port`},
			{"", 10, `trunk transport "sctp" is unknown`},
			{"", 13, `trunk address "192.0.2.11:0" is not ip:port`},
			{"", 14, "outbound_prefix 0 is already used by the trunk at line 11"},
			{"", 15, "trunk name is empty"},
			{"", 17, `outbound_prefix "" must be one or more digits`},
			{"", 18, "trunk has no name"},
			{"", 18, "trunk has no address"},
		}},
		{"policy file problems keep their own file and line", head, "policies:\n  - identity: Sales\n    pickup_range_start: 500\n    pickup_range_end: 10000\n",
			[]want{{"policies.yaml", 4, "pickup_range_end 10000 is out of range: use 10–9999 and more than pickup_range_start (500)"}}},
		{"user grant names an unknown user", head + "users:\n  - {id: ken@contoso.com, password: x}\n",
			"assignments:\n  users:\n    - user: ann@contoso.com\n      policy: Global\n    - user: ken\n      policy: Global\n",
			[]want{
				{"policies.yaml", 3, `unknown user "ann@contoso.com": grant a user listed under users in parkswitch.yaml, by its id`},
				{"policies.yaml", 5, `user "ken" is not a user id: write ken@contoso.com`},
			}},
		{"pickup range covers extensions and numeric names", head + `users:
  - id: 42@contoso.com
    password: x
  - id: ken@contoso.com
    extension: "550"
    password: x
  - id: 99@contoso.com
    extension: "99"
    password: x
  - id: ann@contoso.com
    extension: "0550"
    password: x
`, parkPolicy, []want{
			{"", 4, "user name 42 of 42@contoso.com is in the pickup range 10–99 of policy Global (policies.yaml), so dialing it would retrieve a parked call: set park.retrieve_prefix or move the range"},
			{"", 7, "extension 550 of ken@contoso.com is in the pickup range 500–599 of policy Park"},
			{"", 10, "extension 99 of 99@contoso.com is in the pickup range 10–99 of policy Global"},
			{"", 13, "extension 0550 of ann@contoso.com is in the pickup range 500–599 of policy Park"},
		}},
		{"retrieve prefix followed by a code", head + `park:
  retrieve_prefix: "7"
users:
  - id: ken@contoso.com
    extension: "7550"
    password: x
  - id: ann@contoso.com
    extension: "550"
    password: x
`, parkPolicy, []want{
			{"", 7, "extension 7550 of ken@contoso.com is retrieve_prefix 7 followed by code 550 of policy Park (policies.yaml, pickup range 500–599): change it"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(tt.main, tt.policies)
			if c != nil {
				t.Error("Parse returned a Config with problems")
			}
			checkProblems(t, err, tt.want)
		})
	}
}

// One pass reports the problems of both files, the main file first.
func TestCollectsAll(t *testing.T) {
	main := `server:
  domain: contoso.com
  sip_listen: [tls://0.0.0.0:5061]
media:
  rtp_port_min: 80
park:
  ringback_seconds: 1
  fallback: nobody
users:
  - id: ken@contoso.com
    extension: "15"
  - id: ken@contoso.com
    password: x
`
	policies := `policies:
  - identity: Sales
    park_timeout_seconds: 60
    colour: blue
assignments:
  users:
    - {user: ann@contoso.com, policy: Sales}
`
	_, err := parse(main, policies)
	checkProblems(t, err, []want{
		{"", 3, "a tls:// listener needs a certificate"},
		{"", 5, "rtp_port_min 80 is out of range"},
		{"", 7, "ringback_seconds 1 is out of range"},
		{"", 8, `fallback "nobody" is not a configured user`},
		{"", 10, "user ken@contoso.com has no password or ha1"},
		{"", 12, `id "ken@contoso.com" is already used by the user at line 10`},
		{"policies.yaml", 3, "park_timeout_seconds 60 is out of range"},
		{"policies.yaml", 4, `unknown key "colour" in policy`},
	})
	if !strings.Contains(err.Error(), "parkswitch.yaml:5: rtp_port_min 80 is out of range: use 1024–65535\n") {
		t.Errorf("Error() =\n%v", err)
	}
}

func TestFallback(t *testing.T) {
	main := "server:\n  domain: contoso.com\npark:\n  fallback: %s\nusers:\n  - {id: Ken.Myer@contoso.com, extension: \"2001\", password: x}\n"
	for _, f := range []string{"ken.myer@contoso.com", "KEN.MYER", "\"2001\""} {
		if _, err := parse(strings.Replace(main, "%s", f, 1), ""); err != nil {
			t.Errorf("fallback %s: %v", f, err)
		}
	}
}

func TestUserLookup(t *testing.T) {
	c := &Config{Users: []User{{ID: "Ken.Myer@contoso.com", Extension: "2001"}, {ID: "ann@contoso.com"}}}
	tests := []struct {
		in   string
		want string
	}{
		{"ken.myer@contoso.com", "Ken.Myer@contoso.com"},
		{"KEN.MYER", "Ken.Myer@contoso.com"},
		{"2001", "Ken.Myer@contoso.com"},
		{"ann", "ann@contoso.com"},
		{"", ""},
		{"bob", ""},
	}
	for _, tt := range tests {
		u, ok := c.User(tt.in)
		if ok != (tt.want != "") || u.ID != tt.want {
			t.Errorf("User(%q) = %q, %v; want %q", tt.in, u.ID, ok, tt.want)
		}
	}
	if n := (User{ID: "ken.myer@contoso.com"}).Name(); n != "ken.myer" {
		t.Errorf("Name() = %q", n)
	}
}

// A reload checks the new policy file against the loaded configuration.
func TestParsePolicies(t *testing.T) {
	c, err := parse("server:\n  domain: contoso.com\nusers:\n  - id: ken@contoso.com\n    extension: \"2001\"\n    password: x\n", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want []want
	}{
		{"valid", "assignments:\n  users:\n    - {user: KEN@contoso.com, policy: Global}\n", nil},
		{"invalid file", "policies: {}\n", []want{{"new.yaml", 1, "policies must be a list"}}},
		{"unknown user", "assignments:\n  users:\n    - {user: ann@contoso.com, policy: Global}\n", []want{{"new.yaml", 3, `unknown user "ann@contoso.com"`}}},
		{"new range covers an extension", "policies:\n  - {identity: Global, pickup_range_start: 2000, pickup_range_end: 2100}\n",
			[]want{{"", 5, "extension 2001 of ken@contoso.com is in the pickup range 2000–2100 of policy Global (new.yaml)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := c.ParsePolicies("new.yaml", []byte(tt.data))
			if tt.want == nil {
				if err != nil || set == nil {
					t.Fatalf("ParsePolicies = %v, %v", set, err)
				}
				return
			}
			if set != nil {
				t.Error("ParsePolicies returned a Set with problems")
			}
			checkProblems(t, err, tt.want)
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("sub/policies.yaml", parkPolicy)
	write("music/hold.wav", "RIFF")
	path := write("parkswitch.yaml", "server:\n  domain: contoso.com\nmedia:\n  music_on_hold: music/hold.wav\npark:\n  policy_file: sub/policies.yaml\n")

	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.Media.MusicOnHold != filepath.Join(dir, "music/hold.wav") || c.Park.PolicyFile != filepath.Join(dir, "sub/policies.yaml") {
		t.Errorf("paths not resolved against the config directory: %+v %+v", c.Media, c.Park)
	}
	if _, ok := c.Policies.Lookup("park"); !ok {
		t.Error("policy file not loaded")
	}

	write("sub/policies.yaml", "policies: [")
	if _, err := c.LoadPolicies(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "sub/policies.yaml")+":1: not valid YAML") {
		t.Errorf("LoadPolicies(broken) = %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "sub/policies.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadPolicies(); err == nil || !strings.Contains(err.Error(), "cannot read the policy file") {
		t.Errorf("LoadPolicies(missing) = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "none.yaml")); err == nil || !strings.Contains(err.Error(), "none.yaml: cannot read the configuration") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestHashedCredentialsAndSecurity(t *testing.T) {
	md5 := "0123456789ABCDEF0123456789ABCDEF"
	sha := "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
	c, err := parse("server:\n  domain: contoso.com\nsecurity:\n  ban_after: 3\n  ban_window_seconds: 30\n  ban_seconds: 90\n  retrieve_misses: 5\n  overload_wait_ms: 0\nusers:\n"+
		"  - id: a@contoso.com\n    ha1_sha256: "+sha+"\n"+
		"  - id: b@contoso.com\n    ha1: "+md5+"\n    ha1_sha256: "+sha+"\n", "")
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Users[0]; a.HA1 != "" || a.HA1SHA256 != strings.ToLower(sha) {
		t.Errorf("user a = %+v", a)
	}
	if b := c.Users[1]; b.HA1 != strings.ToLower(md5) || b.HA1SHA256 != strings.ToLower(sha) {
		t.Errorf("user b = %+v", b)
	}
	if want := (Security{MaxConnections: 10000, MaxConnectionsPerIP: 100, BanAfter: 3, BanWindowSeconds: 30, BanSeconds: 90, RetrieveMisses: 5}); c.Security != want {
		t.Errorf("security = %+v, want %+v", c.Security, want)
	}
	if c.Security.OverloadWait() >= 0 {
		t.Errorf("overload_wait_ms: 0 gives %v, want shedding off (negative)", c.Security.OverloadWait())
	}
}

func TestStateSection(t *testing.T) {
	c, err := parse("server:\n  domain: contoso.com\n", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.State.DataDir != filepath.Join(filepath.Dir(c.Path), DefaultDataDir) || c.State.CDRDays != DefaultCDRDays || c.State.CDRMaxMB != DefaultCDRMaxMB || c.State.EventsMaxMB != DefaultEventsMaxMB || !c.State.Embedded() || c.State.NodeID != "" {
		t.Errorf("state defaults = %+v", c.State)
	}
	c, err = parse("server:\n  domain: contoso.com\nstate:\n  data_dir: /var/lib/parkswitch\n  nats_urls: [\"nats://10.0.0.5:4222\", \"tls://user:secret@nats.example.com:4222\"]\n  node_id: sw-1.a\n  cdr_days: 7\n  cdr_max_mb: 200\n  events_max_mb: 64\n", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := (State{DataDir: "/var/lib/parkswitch", NATSURLs: []string{"nats://10.0.0.5:4222", "tls://user:secret@nats.example.com:4222"}, NodeID: "sw-1.a", CDRDays: 7, CDRMaxMB: 200, EventsMaxMB: 64}); !reflect.DeepEqual(c.State, want) || c.State.Embedded() {
		t.Errorf("state = %+v, want %+v", c.State, want)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"  cdr_days: 0", "cdr_days 0 is out of range: use 1–3650"},
		{"  cdr_max_mb: 0", "cdr_max_mb 0 is out of range: use 1–1048576"},
		{"  cdr_max_mb: -5", "cdr_max_mb -5 is out of range"},
		{"  cdr_max_mb: 2000000", "cdr_max_mb 2000000 is out of range"},
		{"  cdr_max_mb: lots", "cdr_max_mb"},
		{"  events_max_mb: 0", "events_max_mb 0 is out of range: use 1–1048576"},
		{"  events_max_mb: 2000000", "events_max_mb 2000000 is out of range"},
		{"  data_dir: \"\"", "state.data_dir is empty"},
		{"  node_id: \"sw 1\"", `node_id "sw 1" is not a node name`},
		{"  nats_urls: [\"10.0.0.5:4222\"]", `"10.0.0.5:4222" has no scheme`},
		{"  nats_urls: [\"http://10.0.0.5:4222\"]", "has scheme http: use nats:// or tls://"},
		{"  nats_urls: [\"nats://u:hunter2@10.0.0.5\"]", `"nats://***@10.0.0.5" is not scheme://host:port`},
		{"  nats_urls: [\"nats://a:1\", \"nats://a:1\"]", "listed twice"},
		{"  nodes: 3", "nodes"},
	} {
		_, err := parse("server:\n  domain: contoso.com\nstate:\n"+tc.yaml+"\n", "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", tc.yaml, err)
		}
	}
}

// TestDTMFCodeOff: an empty dtmf_code turns DTMF park off; absent, it is
// the default.
func TestDTMFCodeOff(t *testing.T) {
	for yaml, want := range map[string]string{
		"park:\n  dtmf_code: \"\"\n":     "",
		"park:\n  dtmf_code: \"#72#\"\n": "#72#",
		"park:\n  dtmf_code: 5\n":        "5",
		"":                               DefaultDTMFCode,
	} {
		c, err := parse("server:\n  domain: contoso.com\n"+yaml, "")
		if err != nil {
			t.Fatalf("%q: %v", yaml, err)
		}
		if c.Park.DTMFCode != want {
			t.Errorf("%q: DTMFCode = %q, want %q", yaml, c.Park.DTMFCode, want)
		}
	}
}
