// Package config loads and validates the main configuration file of
// parkswitch and the policy file it names. Every problem is reported with its
// file and line and a sentence saying what to fix, all of them in one pass.
package config

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/policy"
)

// Defaults of the keys that have one.
const (
	DefaultHTTPListen        = "127.0.0.1:8080"
	DefaultRTPPortMin        = 20000
	DefaultRTPPortMax        = 29999
	DefaultRTPTimeoutSeconds = 60
	DefaultParkUser          = "park"
	DefaultDTMFCode          = "#72"
	DefaultRingbackSeconds   = 30
	DefaultMaxRingbacks      = 3
	DefaultPolicyFile        = "policies.yaml"

	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 100
	DefaultBanAfter            = 10
	DefaultBanWindowSeconds    = 60
	DefaultBanSeconds          = 600
	DefaultRetrieveMisses      = 10
	DefaultOverloadWaitMS      = 40

	DefaultDataDir  = "data"
	DefaultCDRDays  = 30
	DefaultCDRMaxMB = 1024
	// DefaultEventsMaxMB is store/natsstore's DefaultEventsBytes.
	DefaultEventsMaxMB = 512
)

// DefaultDigestAlgorithms are offered when digest_algorithms is absent:
// MD5 first, which phones that read only the first challenge need.
var DefaultDigestAlgorithms = []string{"MD5", "SHA-256"}

// DefaultSIPListen is the sip_listen used when the key is absent.
var DefaultSIPListen = []Listen{{Network: "udp", Addr: "0.0.0.0:5060"}, {Network: "tcp", Addr: "0.0.0.0:5060"}}

// Config is the validated main configuration. The yaml tags name the keys
// of the file, in the order messages list them.
type Config struct {
	Path     string   `yaml:"-"` // the file it was read from
	Server   Server   `yaml:"server"`
	Media    Media    `yaml:"media"`
	Park     Park     `yaml:"park"`
	Security Security `yaml:"security"`
	State    State    `yaml:"state"`
	Users    []User   `yaml:"users" entry:"user"`
	HTTP     HTTP     `yaml:"http"`
	Trunks   []Trunk  `yaml:"trunks" entry:"trunk"`
	Notify   Notify   `yaml:"notify"` // webhooks (notify.go)
	Debug    Debug    `yaml:"debug"`
	// Policies are read from Park.PolicyFile.
	Policies *policy.Set `yaml:"-"`
	// Prompts are the replacements found in Park.PromptsDir, by name (see
	// PromptNames), checked and encoded.
	Prompts map[string]*media.Prompt `yaml:"-"`

	// Where the file's keys were, for the checks ParsePolicies repeats
	// on reloads.
	keys policy.Keys
}

// Server holds the server section.
type Server struct {
	Domain      string   `yaml:"domain"`       // SIP domain and digest realm
	SIPListen   []Listen `yaml:"sip_listen"`   // SIP transports to listen on
	HTTPListen  string   `yaml:"http_listen"`  // host:port of the admin API, /metrics and /healthz
	AdvertiseIP string   `yaml:"advertise_ip"` // address written into Contact and SDP; "" = the listen address
	// DigestAlgorithms are offered in 401/407 challenges, in this order.
	DigestAlgorithms []string `yaml:"digest_algorithms"`
	// TLSCert and TLSKey are PEM files (resolved against the config
	// file's directory) for tls:// listeners; Certificate is the pair
	// loaded from them when set.
	TLSCert     string           `yaml:"tls_cert"`
	TLSKey      string           `yaml:"tls_key"`
	Certificate *tls.Certificate `yaml:"-"`
}

// HTTP holds the credentials of the admin API (the http section). With
// none, the API is open, which is only allowed on a loopback http_listen.
type HTTP struct {
	Users  []HTTPUser  `yaml:"users" entry:"http user"`   // HTTP Basic credentials
	Tokens []HTTPToken `yaml:"tokens" entry:"http token"` // bearer tokens
}

// Configured reports whether any credential is configured.
func (h HTTP) Configured() bool { return len(h.Users)+len(h.Tokens) > 0 }

// Roles of admin API credentials.
const (
	RoleAdmin  = "admin"  // every method
	RoleViewer = "viewer" // GET and HEAD only
)

// HTTPUser is a person who signs in to the admin API with HTTP Basic.
type HTTPUser struct {
	Name         string `yaml:"name" check:"required"`
	PasswordHash string `yaml:"password_hash" check:"required"` // bcrypt, as printed by parkswitch passwd
	Role         string `yaml:"role" check:"required"`          // RoleAdmin or RoleViewer
}

// HTTPToken is a bearer token for scripts and monitoring.
type HTTPToken struct {
	Name  string `yaml:"name" check:"required"`  // who holds it, for logs
	Token string `yaml:"token" check:"required"` // at least MinTokenLength characters
	Role  string `yaml:"role" check:"required"`  // RoleAdmin or RoleViewer
}

// MinTokenLength is the shortest accepted bearer token: 24 characters
// of a random base64 string are 144 bits.
const MinTokenLength = 24

// Listen is one SIP listening socket.
type Listen struct {
	Network string // "udp", "tcp" or "tls"
	Addr    string // host:port
}

// String returns the listen address in its configuration form, udp://host:port.
func (l Listen) String() string { return l.Network + "://" + l.Addr }

// UnmarshalText parses the configuration form of a listen address; the
// error says what to write instead.
func (l *Listen) UnmarshalText(text []byte) error {
	parsed, msg := parseListen(string(text))
	if msg != "" {
		return errors.New(msg)
	}
	*l = parsed
	return nil
}

// Media holds the media section.
type Media struct {
	RTPPortMin        int    `yaml:"rtp_port_min"`
	RTPPortMax        int    `yaml:"rtp_port_max"`
	MusicOnHold       string `yaml:"music_on_hold"`       // WAV file, resolved against the config file's directory; "" = built-in
	RTPTimeoutSeconds int    `yaml:"rtp_timeout_seconds"` // a relay port with no RTP for this long ends the call; 0 disables
}

// RTPTimeout is RTPTimeoutSeconds as a duration; 0 means no timeout.
func (m Media) RTPTimeout() time.Duration { return time.Duration(m.RTPTimeoutSeconds) * time.Second }

// Park holds the park section.
type Park struct {
	ParkUser        string `yaml:"park_user"`        // REFER to sip:<ParkUser>@domain parks the other party
	RetrievePrefix  string `yaml:"retrieve_prefix"`  // dial <prefix><code> to retrieve
	DTMFCode        string `yaml:"dtmf_code"`        // keyed during a call, parks the other party; "" = off
	RingbackSeconds int    `yaml:"ringback_seconds"` // how long a timed-out orbit rings the parker (and then the fallback)
	MaxRingbacks    int    `yaml:"max_ringbacks"`    // unanswered ringback cycles before the parked call is dropped
	Fallback        string `yaml:"fallback"`         // user rung when the parker does not answer; "" = none
	PolicyFile      string `yaml:"policy_file"`      // policy file, resolved against the config file's directory
	Announce        bool   `yaml:"announce"`         // a parker still on the line hears "parked at <code>"
	PromptsDir      string `yaml:"prompts_dir"`      // replacement prompt WAVs, resolved against the config file's directory; "" = none
}

// Ringback is RingbackSeconds as a duration.
func (p Park) Ringback() time.Duration { return time.Duration(p.RingbackSeconds) * time.Second }

// Security holds the security section.
type Security struct {
	MaxConnections      int `yaml:"max_connections"`        // TCP and TLS connections open at once
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"` // of them from one source IP
	BanAfter            int `yaml:"ban_after"`              // failed authentications from one IP within BanWindowSeconds that ban it
	BanWindowSeconds    int `yaml:"ban_window_seconds"`
	BanSeconds          int `yaml:"ban_seconds"`     // how long a banned IP is ignored
	RetrieveMisses      int `yaml:"retrieve_misses"` // retrieves of empty codes per user and minute before 403
	// OverloadWaitMS: when runnable goroutines wait longer than this for a
	// CPU (99th percentile, smoothed), a share of new dialogs and
	// registrations is answered 503 until the switch catches up; 0 = never.
	OverloadWaitMS int `yaml:"overload_wait_ms"`
}

// OverloadWait is OverloadWaitMS as the sip package takes it: negative
// turns shedding off.
func (s Security) OverloadWait() time.Duration {
	if s.OverloadWaitMS == 0 {
		return -1
	}
	return time.Duration(s.OverloadWaitMS) * time.Millisecond
}

// BanWindow is BanWindowSeconds as a duration.
func (s Security) BanWindow() time.Duration { return time.Duration(s.BanWindowSeconds) * time.Second }

// BanTime is BanSeconds as a duration.
func (s Security) BanTime() time.Duration { return time.Duration(s.BanSeconds) * time.Second }

// State holds the state section (SPEC §10): where registrations, orbits,
// parked dialogs, events and call records are kept.
type State struct {
	DataDir  string   `yaml:"data_dir"`   // JetStream files of the embedded NATS server, resolved against the config file's directory
	NATSURLs []string `yaml:"nats_urls"`  // an existing NATS cluster to use instead of the embedded server
	NodeID   string   `yaml:"node_id"`    // this node's name in a cluster; default: the host name
	CDRDays  int      `yaml:"cdr_days"`   // call records are kept this many days
	CDRMaxMB int      `yaml:"cdr_max_mb"` // and take at most this many MiB on disk, the oldest dropped first
	// EventsMaxMB bounds the event history (SSE and webhook replay) on
	// disk, the oldest dropped first.
	EventsMaxMB int `yaml:"events_max_mb"`
}

// Debug holds the debug section: what an operator turns on to find where
// the time or the memory goes. It is read at start only.
type Debug struct {
	// PprofListen is a loopback host:port serving net/http/pprof under
	// /debug/pprof/ with no authentication; "" (the default) serves none.
	PprofListen string `yaml:"pprof_listen"`
}

// Embedded reports whether the switch runs its own NATS server.
func (s State) Embedded() bool { return len(s.NATSURLs) == 0 }

// User is one configured user.
type User struct {
	ID          string   `yaml:"id" check:"required"` // address of record, name@domain
	Extension   string   `yaml:"extension"`           // optional dialable number
	DisplayName string   `yaml:"display_name"`
	Password    string   `yaml:"password"`   // either Password or one or both of HA1 and HA1SHA256 is set
	HA1         string   `yaml:"ha1"`        // lower-case hex MD5 of name:realm:password
	HA1SHA256   string   `yaml:"ha1_sha256"` // lower-case hex SHA-256 of name:realm:password
	Groups      []string `yaml:"groups"`
	Contact     string   `yaml:"contact"` // optional static binding, a sip: or sips: URI
	Line        int      `yaml:"-"`       // line of the user's entry in the config file
}

// Name returns the user part of the ID, the SIP and digest user name.
func (u User) Name() string {
	name, _, _ := strings.Cut(u.ID, "@")
	return name
}

// Trunk is an IP-authenticated peer.
type Trunk struct {
	Name           string `yaml:"name" check:"required"`
	Address        string `yaml:"address" check:"required"` // ip:port; requests from this IP are trusted, calls go to this address
	Transport      string `yaml:"transport"`                // "udp", "tcp" or "tls"
	OutboundPrefix string `yaml:"outbound_prefix"`          // dialed prefix that routes a call here; stripped before sending
	Line           int    `yaml:"-"`                        // line of the trunk's entry in the config file
}

// User finds a user by ID, user name or extension, ignoring case.
func (c *Config) User(s string) (User, bool) {
	for _, u := range c.Users {
		if strings.EqualFold(u.ID, s) || strings.EqualFold(u.Name(), s) || (u.Extension != "" && u.Extension == s) {
			return u, true
		}
	}
	return User{}, false
}

// Load reads the configuration at path and the policy file it names.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, policy.Problems{{File: path, Msg: "cannot read the configuration (" + err.Error() + "): create it or pass --config"}}
	}
	return Parse(path, data, os.ReadFile)
}

// LoadPolicies reads c.Park.PolicyFile from disk and validates it against c,
// as a server does when the file changes.
func (c *Config) LoadPolicies() (*policy.Set, error) {
	data, err := os.ReadFile(c.Park.PolicyFile)
	if err != nil {
		return nil, policy.Problems{{File: c.Park.PolicyFile, Msg: "cannot read the policy file (" + err.Error() + "): create it or fix park.policy_file"}}
	}
	return c.ParsePolicies(c.Park.PolicyFile, data)
}

// resolvePath makes a path from the configuration relative to its directory.
func resolvePath(configPath, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configPath), p)
}
