package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/sip/sipcheck"
)

// Ranges of the numeric keys.
const (
	minRTPPort, maxRTPPort           = 1024, 65535
	minRTPPorts                      = 4 // one relayed call: RTP and RTCP on both legs
	minRTPTimeout, maxRTPTimeout     = 5, 86400
	minRingbackSecs, maxRingbackSecs = 5, 600
	minRingbacks, maxRingbacks       = 1, 10
	minBanAfter, maxBanAfter         = 1, 100
	minBanWindow, maxBanWindow       = 1, 86400
	minBanSeconds, maxBanSeconds     = 1, 30 * 86400
	minRetrieveMiss, maxRetrieveMiss = 1, 100
	minOverloadWait, maxOverloadWait = 0, 1000
)

// Parse validates the configuration data read from path. readFile reads the
// policy file the configuration names (os.ReadFile, or a reader of the
// embedded defaults). The error, a policy.Problems, lists every problem of
// both files with its file and line.
func Parse(path string, data []byte, readFile func(string) ([]byte, error)) (*Config, error) {
	p := &parser{
		d: &policy.NodeDecoder{File: path},
		c: &Config{
			Path: path,
			Server: Server{
				SIPListen:  append([]Listen(nil), DefaultSIPListen...),
				HTTPListen: DefaultHTTPListen,
			},
			Media: Media{
				RTPPortMin:        DefaultRTPPortMin,
				RTPPortMax:        DefaultRTPPortMax,
				RTPTimeoutSeconds: DefaultRTPTimeoutSeconds,
			},
			Park: Park{
				ParkUser:        DefaultParkUser,
				DTMFCode:        DefaultDTMFCode,
				RingbackSeconds: DefaultRingbackSeconds,
				MaxRingbacks:    DefaultMaxRingbacks,
				PolicyFile:      DefaultPolicyFile,
				Announce:        true,
			},
			Security: Security{
				MaxConnections: DefaultMaxConnections, MaxConnectionsPerIP: DefaultMaxConnectionsPerIP,
				BanAfter: DefaultBanAfter, BanWindowSeconds: DefaultBanWindowSeconds,
				BanSeconds: DefaultBanSeconds, RetrieveMisses: DefaultRetrieveMisses,
				OverloadWaitMS: DefaultOverloadWaitMS,
			},
			State: State{DataDir: DefaultDataDir, CDRDays: DefaultCDRDays, CDRMaxMB: DefaultCDRMaxMB, EventsMaxMB: DefaultEventsMaxMB},
		},
	}
	doc := p.d.Document(data)
	if doc == nil && len(p.d.Problems) > 0 {
		// Not YAML: every other check would report the defaults left in
		// place of what could not be read.
		return nil, p.d.Problems.Err()
	}
	p.decode(doc)
	if doc != nil && len(doc.Content) == 1 && doc.Content[0].Kind != yaml.MappingNode && len(p.d.Problems) > 0 {
		// Not a mapping at all: there is nothing the other checks could say.
		return nil, p.d.Problems.Err()
	}
	p.checkServer()
	p.checkTLS(readFile)
	p.checkHTTP()
	p.checkMedia()
	p.checkUsers()
	p.checkPark()
	p.checkSecurity()
	p.checkState()
	p.checkTrunks()
	p.checkNotify()
	p.checkDebug()
	p.loadPolicies(readFile)

	ps := p.d.Problems
	ps.Sort()
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return p.c, nil
}

// ParsePolicies validates a policy file's content, then checks it against c:
// user grants must name configured users, and no pickup range may swallow a
// dialable extension or user name. A server uses it on every reload so a
// changed file meets the same rules as at start.
func (c *Config) ParsePolicies(filename string, data []byte) (*policy.Set, error) {
	set, err := policy.Parse(filename, data)
	if err != nil {
		return nil, err
	}
	ps := c.checkPolicies(filename, set)
	ps.Sort()
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// parser holds a configuration while it is decoded, with the key lines that
// later checks point at.
type parser struct {
	d *policy.NodeDecoder
	c *Config

	root, server, media, park policy.Keys
	security, state, http     policy.Keys
	listenLines               []int // line of each c.Server.SIPListen entry
}

// decode decodes the file into p.c, whose fields name its keys, keeping
// where each key was.
func (p *parser) decode(doc *yaml.Node) {
	c := p.c
	p.root = p.d.Decode(doc, "the top level", c)
	c.keys = p.root
	p.server, p.media, p.park = p.root.Section("server"), p.root.Section("media"), p.root.Section("park")
	p.security, p.state, p.http = p.root.Section("security"), p.root.Section("state"), p.root.Section("http")
	for i := range c.Users {
		c.Users[i].Line = p.root.Entry("users", i).Start()
	}
	for i := range c.Trunks {
		c.Trunks[i].Line = p.root.Entry("trunks", i).Start()
	}
	p.checkListen()
}

// checkListen drops the sip_listen entries listed twice and keeps the line
// of the others for later checks.
func (p *parser) checkListen() {
	s, k := &p.c.Server, p.server
	if !k.Has("sip_listen") {
		return
	}
	if !k.Bad("sip_listen") && len(s.SIPListen) == 0 {
		p.d.Addf(k.Line("sip_listen"), "sip_listen is empty: list at least one udp://host:port, tcp://host:port or tls://host:port, or remove the key for the default")
		return
	}
	var listens []Listen
	for i, l := range s.SIPListen {
		e := k.Entry("sip_listen", i)
		if j := slices.Index(listens, l); j >= 0 {
			p.d.Addf(e.Start(), "sip_listen entry %s is listed twice (line %d): remove one", e.Text(), p.listenLines[j])
			continue
		}
		listens, p.listenLines = append(listens, l), append(p.listenLines, e.Start())
	}
	s.SIPListen = listens
}

// parseListen parses "udp://host:port", "tcp://host:port" or
// "tls://host:port"; msg says what is wrong otherwise.
func parseListen(s string) (l Listen, msg string) {
	scheme, addr, ok := strings.Cut(s, "://")
	if !ok {
		return l, fmt.Sprintf("sip_listen entry %q has no transport: write udp://%s, tcp://%s or tls://%s", s, s, s, s)
	}
	switch network := strings.ToLower(scheme); network {
	case "udp", "tcp", "tls":
		l.Network = network
	case "ws", "wss", "sctp":
		return l, fmt.Sprintf("sip_listen transport %s is not supported yet: use udp://, tcp:// or tls://", network)
	default:
		return l, fmt.Sprintf("sip_listen transport %q is unknown: use udp://, tcp:// or tls://", scheme)
	}
	host, _, bad := splitHostPort(addr)
	switch {
	case bad == badPort:
		return l, fmt.Sprintf("sip_listen entry %q has a port out of range: use a port 1–65535, e.g. %s://0.0.0.0:5060", s, l.Network)
	case bad != "" || (host != "" && !sipcheck.ValidHost(host)):
		return l, fmt.Sprintf("sip_listen entry %q does not end in host:port: write e.g. %s://0.0.0.0:5060", s, l.Network)
	}
	l.Addr = addr
	return l, ""
}

// What splitHostPort found wrong.
const (
	notHostPort = "not host:port"
	badPort     = "port out of range"
)

// splitHostPort splits host:port, requiring a port 1–65535.
func splitHostPort(s string) (host string, port int, msg string) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil || ps == "" || !sipcheck.IsDigits(ps) {
		return "", 0, notHostPort
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, badPort
	}
	return host, port, ""
}

func (p *parser) checkServer() {
	d, s := p.d, &p.c.Server
	switch {
	case p.server.Bad("domain"):
	case s.Domain == "":
		line := p.server.Line("domain")
		if line == 0 {
			line = p.root.Line("server")
		}
		d.Addf(line, "server.domain is missing: add domain: <your SIP domain> under server, e.g. domain: contoso.com")
	case !sipcheck.ValidHost(s.Domain):
		d.Addf(p.server.Line("domain"), "domain %q is not a host name or IP address: write the domain phones register to, e.g. contoso.com", s.Domain)
	}
	if !p.server.Bad("http_listen") {
		switch _, _, msg := splitHostPort(s.HTTPListen); msg {
		case badPort:
			d.Addf(p.server.Line("http_listen"), "http_listen %q has a port out of range: use a port 1–65535, e.g. %s", s.HTTPListen, DefaultHTTPListen)
		case notHostPort:
			d.Addf(p.server.Line("http_listen"), "http_listen %q is not host:port: write e.g. %s", s.HTTPListen, DefaultHTTPListen)
		}
	}
	if p.server.Has("digest_algorithms") && !p.server.Bad("digest_algorithms") {
		seen := map[string]bool{}
		if len(s.DigestAlgorithms) == 0 {
			d.Addf(p.server.Line("digest_algorithms"), "digest_algorithms is empty: list MD5, SHA-256 or both, e.g. [MD5, SHA-256]")
		}
		for i, a := range s.DigestAlgorithms {
			up := strings.ToUpper(a)
			if up != "MD5" && up != "SHA-256" {
				d.Addf(p.server.Line("digest_algorithms"), "digest algorithm %q is not supported: use MD5 or SHA-256", a)
			} else if seen[up] {
				d.Addf(p.server.Line("digest_algorithms"), "digest algorithm %s is listed twice", up)
			}
			seen[up] = true
			s.DigestAlgorithms[i] = up
		}
	}
	if len(s.DigestAlgorithms) == 0 {
		s.DigestAlgorithms = append([]string(nil), DefaultDigestAlgorithms...)
	}
	if !p.server.Bad("advertise_ip") && s.AdvertiseIP != "" {
		ip, err := netip.ParseAddr(s.AdvertiseIP)
		switch {
		case err != nil:
			d.Addf(p.server.Line("advertise_ip"), "advertise_ip %q is not an IP address: write the address phones reach this server at, or leave it empty", s.AdvertiseIP)
		case ip.IsUnspecified():
			d.Addf(p.server.Line("advertise_ip"), "advertise_ip %s cannot be advertised: write the address phones reach this server at, or leave it empty", s.AdvertiseIP)
		default:
			s.AdvertiseIP = ip.String()
		}
	}
}

// checkTLS loads server.tls_cert and tls_key when set, and requires them
// for a tls:// listener.
func (p *parser) checkTLS(readFile func(string) ([]byte, error)) {
	d, s, k := p.d, &p.c.Server, p.server
	if k.Bad("tls_cert") || k.Bad("tls_key") {
		return
	}
	tlsLine := 0
	for i, l := range s.SIPListen {
		if l.Network == "tls" && i < len(p.listenLines) {
			tlsLine = p.listenLines[i]
			break
		}
	}
	switch {
	case s.TLSCert == "" && s.TLSKey == "":
		if tlsLine != 0 {
			d.Addf(tlsLine, "a tls:// listener needs a certificate: set server.tls_cert and server.tls_key (PEM files, relative to this file)")
		}
		return
	case s.TLSCert == "":
		d.Addf(k.Line("tls_key"), "tls_key is set without tls_cert: add tls_cert, the PEM certificate (chain) for the key")
		return
	case s.TLSKey == "":
		d.Addf(k.Line("tls_cert"), "tls_cert is set without tls_key: add tls_key, the PEM private key of the certificate")
		return
	}
	s.TLSCert, s.TLSKey = resolvePath(p.c.Path, s.TLSCert), resolvePath(p.c.Path, s.TLSKey)
	certPEM, err := readFile(s.TLSCert)
	if err != nil {
		d.Addf(k.Line("tls_cert"), "tls_cert %s cannot be read (%v): fix the path (relative to this file's directory)", s.TLSCert, unwrapPathError(err))
		return
	}
	keyPEM, err := readFile(s.TLSKey)
	if err != nil {
		d.Addf(k.Line("tls_key"), "tls_key %s cannot be read (%v): fix the path (relative to this file's directory)", s.TLSKey, unwrapPathError(err))
		return
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		d.Addf(k.Line("tls_cert"), "tls_cert %s and tls_key %s do not load as a PEM certificate and its key (%v): point them at a matching pair", s.TLSCert, s.TLSKey, err)
		return
	}
	s.Certificate = &cert
}

// checkHTTP validates the admin API credentials and refuses an API that
// other hosts can reach without any.
func (p *parser) checkHTTP() {
	d, h := p.d, &p.c.HTTP
	names := map[string]int{}
	name := func(k policy.Keys, n string) {
		switch line, dup := names[strings.ToLower(n)]; {
		case k.Bad("name"):
		case strings.TrimSpace(n) == "" || strings.ContainsAny(n, ":\r\n"):
			d.Addf(k.Line("name"), "http name %q is empty or has a colon or line break: name the person or script, e.g. admin", n)
		case dup:
			d.Addf(k.Line("name"), "http name %q is already used at line %d: give each user and token its own name", n, line)
		default:
			names[strings.ToLower(n)] = k.Line("name")
		}
	}
	role := func(k policy.Keys, r *string) {
		if k.Bad("role") {
			return
		}
		switch low := strings.ToLower(*r); low {
		case RoleAdmin, RoleViewer:
			*r = low
		default:
			d.Addf(k.Line("role"), "role %q is unknown: use admin (may change things) or viewer (may only read)", *r)
		}
	}
	for i := range h.Users {
		u, k := &h.Users[i], p.http.Entry("users", i)
		name(k, u.Name)
		role(k, &u.Role)
		if !k.Bad("password_hash") {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				d.Addf(k.Line("password_hash"), "password_hash of %s is not a bcrypt hash: paste what `parkswitch passwd` prints", u.Name)
			}
		}
	}
	tokens := map[string]int{}
	for i := range h.Tokens {
		t, k := &h.Tokens[i], p.http.Entry("tokens", i)
		name(k, t.Name)
		role(k, &t.Role)
		if k.Bad("token") {
			continue
		}
		switch line, dup := tokens[t.Token]; {
		case len(t.Token) < MinTokenLength || strings.ContainsAny(t.Token, " \t\r\n"):
			d.Addf(k.Line("token"), "token of %s is shorter than %d characters or has blanks: use a random secret, e.g. the output of `openssl rand -base64 32`", t.Name, MinTokenLength)
		case dup:
			d.Addf(k.Line("token"), "token of %s is the same as the one at line %d: give each holder its own", t.Name, line)
		default:
			tokens[t.Token] = k.Line("token")
		}
	}
	s := p.c.Server
	if p.server.Bad("http_listen") || h.Configured() {
		return
	}
	if host, _, msg := splitHostPort(s.HTTPListen); msg == "" && !loopbackHost(host) {
		line := p.server.Line("http_listen")
		if line == 0 {
			line = p.root.Line("server")
		}
		d.Addf(line, "http_listen %s is reachable from other hosts but the admin API has no credentials: add http.users (hash a password with `parkswitch passwd`) or http.tokens, or listen on 127.0.0.1", s.HTTPListen)
	}
}

// loopbackHost reports whether an http_listen host only accepts local
// connections. An empty host means every interface.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (p *parser) checkMedia() {
	d, m, k := p.d, &p.c.Media, p.media
	okMin := p.checkRange(k, "rtp_port_min", m.RTPPortMin, minRTPPort, maxRTPPort)
	okMax := p.checkRange(k, "rtp_port_max", m.RTPPortMax, minRTPPort, maxRTPPort)
	if okMin && okMax {
		switch {
		case m.RTPPortMax <= m.RTPPortMin:
			d.Addf(k.Line("rtp_port_max"), "rtp_port_max %d is not more than rtp_port_min %d: swap them or widen the range", m.RTPPortMax, m.RTPPortMin)
		case m.RTPPortMax-m.RTPPortMin+1 < minRTPPorts:
			d.Addf(k.Line("rtp_port_max"), "the RTP port range %d–%d has fewer than %d ports, the least one relayed call needs: widen it", m.RTPPortMin, m.RTPPortMax, minRTPPorts)
		default:
			p.checkListenVsRTP()
		}
	}
	if !k.Bad("rtp_timeout_seconds") && m.RTPTimeoutSeconds != 0 &&
		(m.RTPTimeoutSeconds < minRTPTimeout || m.RTPTimeoutSeconds > maxRTPTimeout) {
		d.Addf(k.Line("rtp_timeout_seconds"), "rtp_timeout_seconds %d is out of range: use %d–%d, or 0 to never end a call for silence",
			m.RTPTimeoutSeconds, minRTPTimeout, maxRTPTimeout)
	}
	if !k.Bad("music_on_hold") && m.MusicOnHold != "" {
		written := m.MusicOnHold
		m.MusicOnHold = resolvePath(p.c.Path, written)
		switch st, err := os.Stat(m.MusicOnHold); {
		case err != nil:
			d.Addf(k.Line("music_on_hold"), "music_on_hold file %s cannot be read (%v): fix the path (relative to this file's directory) or leave it empty for the built-in music", m.MusicOnHold, unwrapPathError(err))
		case !st.Mode().IsRegular():
			d.Addf(k.Line("music_on_hold"), "music_on_hold %s is not a file: name a WAV file (8 kHz mono 16-bit) or leave it empty for the built-in music", m.MusicOnHold)
		}
	}
}

// checkListenVsRTP refuses a UDP SIP port inside the RTP range: the relay
// would try to bind it.
func (p *parser) checkListenVsRTP() {
	m := p.c.Media
	for i, l := range p.c.Server.SIPListen {
		if l.Network != "udp" || i >= len(p.listenLines) {
			continue
		}
		if _, port, msg := splitHostPort(l.Addr); msg == "" && port >= m.RTPPortMin && port <= m.RTPPortMax {
			p.d.Addf(p.listenLines[i], "sip_listen port %d is inside the RTP port range %d–%d: move one of them", port, m.RTPPortMin, m.RTPPortMax)
		}
	}
}

// checkRange reports key's value outside lo–hi and says whether it is usable.
func (p *parser) checkRange(k policy.Keys, key string, v, lo, hi int) bool {
	if k.Bad(key) {
		return false
	}
	if v < lo || v > hi {
		p.d.Addf(k.Line(key), "%s %d is out of range: use %d–%d", key, v, lo, hi)
		return false
	}
	return true
}

func (p *parser) checkPark() {
	d, pk, k := p.d, &p.c.Park, p.park
	if !k.Bad("park_user") {
		switch {
		case pk.ParkUser == "":
			d.Addf(k.Line("park_user"), "park_user is empty: name the user part phones transfer to for parking, e.g. park")
		case !validSIPUser(pk.ParkUser):
			d.Addf(k.Line("park_user"), "park_user %q has characters a SIP URI cannot carry: use letters, digits and . - _ ~ ! * ' ( ) & = + $ ,", pk.ParkUser)
		default:
			for _, u := range p.c.Users {
				if strings.EqualFold(u.Name(), pk.ParkUser) || u.Extension == pk.ParkUser {
					d.Addf(k.Line("park_user"), "park_user %q is also user %s (line %d): rename one of them, or calls to that user would park", pk.ParkUser, u.ID, u.Line)
					break
				}
			}
		}
	}
	if !k.Bad("retrieve_prefix") && strings.Trim(pk.RetrievePrefix, "0123456789*#") != "" {
		d.Addf(k.Line("retrieve_prefix"), "retrieve_prefix %q can only hold digits, * and #: write e.g. *5 or leave it empty", pk.RetrievePrefix)
	}
	if !k.Bad("dtmf_code") && pk.DTMFCode != "" && (len(pk.DTMFCode) > 8 || strings.Trim(pk.DTMFCode, "0123456789*#") != "") {
		d.Addf(k.Line("dtmf_code"), "dtmf_code %q must be 1 to 8 keys of 0-9, * and #: write e.g. \"#72\", or \"\" to turn DTMF park off", pk.DTMFCode)
	}
	p.checkRange(k, "ringback_seconds", pk.RingbackSeconds, minRingbackSecs, maxRingbackSecs)
	p.checkRange(k, "max_ringbacks", pk.MaxRingbacks, minRingbacks, maxRingbacks)
	if !k.Bad("fallback") && pk.Fallback != "" {
		if _, ok := p.c.User(pk.Fallback); !ok {
			d.Addf(k.Line("fallback"), "fallback %q is not a configured user: write a user's id, name or extension, or leave it empty", pk.Fallback)
		}
	}
	p.checkPrompts()
}

func (p *parser) checkSecurity() {
	k, sc := p.security, p.c.Security
	p.checkRange(k, "max_connections", sc.MaxConnections, 1, 1000000)
	p.checkRange(k, "max_connections_per_ip", sc.MaxConnectionsPerIP, 1, 1000000)
	p.checkRange(k, "ban_after", sc.BanAfter, minBanAfter, maxBanAfter)
	p.checkRange(k, "ban_window_seconds", sc.BanWindowSeconds, minBanWindow, maxBanWindow)
	p.checkRange(k, "ban_seconds", sc.BanSeconds, minBanSeconds, maxBanSeconds)
	p.checkRange(k, "retrieve_misses", sc.RetrieveMisses, minRetrieveMiss, maxRetrieveMiss)
	p.checkRange(k, "overload_wait_ms", sc.OverloadWaitMS, minOverloadWait, maxOverloadWait)
}

func (p *parser) checkUsers() {
	d, c := p.d, p.c
	domain := c.Server.Domain
	if domain == "" {
		domain = "contoso.com"
	}
	type seen struct {
		line int
		id   string
	}
	ids, names, exts := map[string]seen{}, map[string]seen{}, map[string]seen{}
	for i := range c.Users {
		u, k := &c.Users[i], c.keys.Entry("users", i)
		if k.Bad("id") {
			continue
		}
		name, host, ok := strings.Cut(u.ID, "@")
		line := k.Line("id")
		switch {
		case !ok || name == "" || !sipcheck.ValidHost(host):
			if name == "" {
				name = "name"
			}
			d.Addf(line, "id %q is not of the form name@domain: write e.g. %s@%s", u.ID, name, domain)
			continue
		case !validSIPUser(name):
			d.Addf(line, "user part %q of id %q has characters a SIP URI cannot carry: use letters, digits and . - _ ~ ! * ' ( ) & = + $ ,", name, u.ID)
		}
		if prev, dup := ids[strings.ToLower(u.ID)]; dup {
			d.Addf(line, "id %q is already used by the user at line %d: ids ignore case, so give each user its own", u.ID, prev.line)
			continue
		}
		ids[strings.ToLower(u.ID)] = seen{line, u.ID}
		if prev, dup := names[strings.ToLower(name)]; dup {
			d.Addf(line, "user name %q of %s is already used by %s (line %d): the user part is the SIP and digest name, so make it unique", name, u.ID, prev.id, prev.line)
			continue
		}
		names[strings.ToLower(name)] = seen{line, u.ID}
	}
	for i := range c.Users {
		u, k := &c.Users[i], c.keys.Entry("users", i)
		line := k.Line("extension")
		if !k.Bad("extension") && u.Extension != "" {
			switch prev, dup := exts[u.Extension]; {
			case !sipcheck.IsDigits(u.Extension):
				d.Addf(line, "extension %q must be digits only: write e.g. \"2001\" or leave it out", u.Extension)
			case dup:
				d.Addf(line, "extension %s of %s is already used by %s (line %d): give each user its own", u.Extension, u.ID, prev.id, prev.line)
			default:
				exts[u.Extension] = seen{line, u.ID}
				if other, clash := names[strings.ToLower(u.Extension)]; clash && !strings.EqualFold(other.id, u.ID) {
					d.Addf(line, "extension %s of %s is the user name of %s (line %d): dialing it would be ambiguous, so pick another extension", u.Extension, u.ID, other.id, other.line)
				}
			}
		}
		p.checkCredentials(u, k)
		if !k.Bad("contact") && u.Contact != "" && !validContact(u.Contact) {
			d.Addf(k.Line("contact"), "contact %q is not a SIP URI: write e.g. sip:%s@192.0.2.20:5060, or leave it empty for a phone that registers", u.Contact, u.Name())
		}
		for _, g := range u.Groups {
			if !k.Bad("groups") && strings.TrimSpace(g) == "" {
				d.Addf(k.Line("groups"), "groups of %s has an empty name: remove it or name the group", u.ID)
			}
		}
	}
}

func (p *parser) checkCredentials(u *User, k policy.Keys) {
	if k.Bad("password") || k.Bad("ha1") || k.Bad("ha1_sha256") {
		return
	}
	d, who, name := p.d, "user "+u.ID, u.Name()
	if u.ID == "" {
		who, name = "this user", "name"
	}
	switch {
	case u.Password != "" && u.HA1 != "":
		d.Addf(k.Line("ha1"), "%s has both password and ha1: keep only one of them", who)
	case u.Password != "" && u.HA1SHA256 != "":
		d.Addf(k.Line("ha1_sha256"), "%s has both password and ha1_sha256: keep only one of them", who)
	case u.Password == "" && u.HA1 == "" && u.HA1SHA256 == "":
		d.Addf(k.Line("password"), "%s has no password or ha1: add password: <secret>, or ha1: <MD5 of %s:%s:password> (and/or ha1_sha256: <SHA-256 of it>)", who, name, p.c.Server.Domain)
	}
	if u.HA1 != "" {
		if !isHex(u.HA1, 32) {
			d.Addf(k.Line("ha1"), "ha1 of %s is not 32 hex digits: write the MD5 of %s:%s:password in hex", who, name, p.c.Server.Domain)
		}
		u.HA1 = strings.ToLower(u.HA1)
	}
	if u.HA1SHA256 != "" {
		if !isHex(u.HA1SHA256, 64) {
			d.Addf(k.Line("ha1_sha256"), "ha1_sha256 of %s is not 64 hex digits: write the SHA-256 of %s:%s:password in hex", who, name, p.c.Server.Domain)
		}
		u.HA1SHA256 = strings.ToLower(u.HA1SHA256)
	}
}

func isHex(s string, n int) bool {
	return len(s) == n && strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}

func (p *parser) checkTrunks() {
	d := p.d
	names, prefixes := map[string]int{}, map[string]int{}
	for i := range p.c.Trunks {
		t, k := &p.c.Trunks[i], p.root.Entry("trunks", i)
		if !k.Bad("name") {
			switch line, dup := names[strings.ToLower(t.Name)]; {
			case strings.TrimSpace(t.Name) == "":
				d.Addf(k.Line("name"), "trunk name is empty: name the trunk, e.g. carrier")
			case dup:
				d.Addf(k.Line("name"), "trunk name %q is already used by the trunk at line %d: give each trunk its own", t.Name, line)
			default:
				names[strings.ToLower(t.Name)] = t.Line
			}
		}
		if !k.Bad("address") {
			if ap, err := netip.ParseAddrPort(t.Address); err != nil || ap.Port() == 0 {
				d.Addf(k.Line("address"), "trunk address %q is not ip:port: write the peer's IP address and port, e.g. 192.0.2.10:5060", t.Address)
			}
		}
		if !k.Bad("transport") {
			switch tr := strings.ToLower(t.Transport); tr {
			case "":
				t.Transport = "udp"
			case "udp", "tcp", "tls":
				t.Transport = tr
			case "ws", "wss":
				d.Addf(k.Line("transport"), "trunk transport %s is not supported yet: use udp, tcp or tls", tr)
			default:
				d.Addf(k.Line("transport"), "trunk transport %q is unknown: use udp, tcp or tls", t.Transport)
			}
		}
		// Without outbound_prefix a trunk is inbound only: its calls come
		// in, none is sent out through it.
		if !k.Bad("outbound_prefix") && (k.Has("outbound_prefix") || t.OutboundPrefix != "") {
			switch line, dup := prefixes[t.OutboundPrefix]; {
			case t.OutboundPrefix == "" || !sipcheck.IsDigits(t.OutboundPrefix):
				d.Addf(k.Line("outbound_prefix"), "outbound_prefix %q must be one or more digits: write e.g. \"9\", or remove the key for a trunk that only brings calls in", t.OutboundPrefix)
			case dup:
				d.Addf(k.Line("outbound_prefix"), "outbound_prefix %s is already used by the trunk at line %d: give each trunk its own", t.OutboundPrefix, line)
			default:
				prefixes[t.OutboundPrefix] = k.Line("outbound_prefix")
			}
		}
	}
}

// loadPolicies reads and checks the policy file, adding its problems, which
// carry the policy file's own name and lines.
func (p *parser) loadPolicies(readFile func(string) ([]byte, error)) {
	d, k := p.d, p.park
	if k.Bad("policy_file") {
		return
	}
	if p.c.Park.PolicyFile == "" {
		d.Addf(k.Line("policy_file"), "policy_file is empty: name the policy file, e.g. %s", DefaultPolicyFile)
		return
	}
	p.c.Park.PolicyFile = resolvePath(p.c.Path, p.c.Park.PolicyFile)
	data, err := readFile(p.c.Park.PolicyFile)
	if err != nil {
		d.Addf(k.Line("policy_file"), "policy file %s cannot be read (%v): create it or fix park.policy_file (relative to this file's directory)", p.c.Park.PolicyFile, unwrapPathError(err))
		return
	}
	set, err := p.c.ParsePolicies(p.c.Park.PolicyFile, data)
	var ps policy.Problems
	switch {
	case errors.As(err, &ps):
		d.Problems = append(d.Problems, ps...)
	case err != nil:
		d.Addf(k.Line("policy_file"), "policy file %s: %v", p.c.Park.PolicyFile, err)
	default:
		p.c.Policies = set
	}
}

// checkPolicies checks set against the configuration.
func (c *Config) checkPolicies(filename string, set *policy.Set) policy.Problems {
	var ps policy.Problems
	for _, g := range set.UserGrants() {
		if c.userByID(g.User) {
			continue
		}
		msg := fmt.Sprintf("unknown user %q: grant a user listed under users in %s, by its id", g.User, c.Path)
		if u, ok := c.User(g.User); ok {
			msg = fmt.Sprintf("user %q is not a user id: write %s", g.User, u.ID)
		}
		ps = append(ps, policy.Problem{File: filename, Line: g.Line, Msg: msg})
	}

	prefix := c.Park.RetrievePrefix
	clash := func(line int, what, dialed string) {
		code, ok := policy.ParseCode(dialed, prefix)
		if !ok {
			return
		}
		for _, pol := range set.Policies() {
			if !pol.InRange(code) {
				continue
			}
			var msg string
			if prefix == "" {
				msg = fmt.Sprintf("%s is in the pickup range %d–%d of policy %s (%s), so dialing it would retrieve a parked call: set park.retrieve_prefix or move the range",
					what, pol.PickupRangeStart, pol.PickupRangeEnd, pol.Identity, filename)
			} else {
				msg = fmt.Sprintf("%s is retrieve_prefix %s followed by code %d of policy %s (%s, pickup range %d–%d): change it, park.retrieve_prefix or the range",
					what, prefix, code, pol.Identity, filename, pol.PickupRangeStart, pol.PickupRangeEnd)
			}
			ps = append(ps, policy.Problem{File: c.Path, Line: line, Msg: msg})
		}
	}
	clash(c.keys.Section("park").Line("park_user"), "park_user "+c.Park.ParkUser, c.Park.ParkUser)
	for i, u := range c.Users {
		idLine, extLine := u.Line, u.Line
		if k := c.keys.Entry("users", i); k.Start() != 0 {
			idLine, extLine = k.Line("id"), k.Line("extension")
		}
		if name := u.Name(); sipcheck.IsDigits(name) && name != u.Extension {
			clash(idLine, fmt.Sprintf("user name %s of %s", name, u.ID), name)
		}
		if sipcheck.IsDigits(u.Extension) {
			clash(extLine, fmt.Sprintf("extension %s of %s", u.Extension, u.ID), u.Extension)
		}
	}
	return ps
}

func (c *Config) userByID(id string) bool {
	for _, u := range c.Users {
		if strings.EqualFold(u.ID, id) {
			return true
		}
	}
	return false
}

// validSIPUser reports whether s can be the user part of a SIP URI without
// escaping (RFC 3261 unreserved and most user-unreserved characters).
func validSIPUser(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_.!~*'()&=+$,", r): // ; ? / are legal too, but parsers trip on them
		default:
			return false
		}
	}
	return true
}

// validContact reports whether the switch can send requests to contact,
// as it parses it for a static binding.
func validContact(contact string) bool {
	_, err := sipcheck.ParseSIPURI(contact)
	return err == nil
}

// unwrapPathError drops the operation and path from a file error, which the
// message already names.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Bounds of the state section.
const (
	minCDRDays, maxCDRDays   = 1, 3650
	minStreamMB, maxStreamMB = 1, 1 << 20 // cdr_max_mb and events_max_mb: 1 MiB to 1 TiB
	maxNodeIDLen             = 64
)

func (p *parser) checkState() {
	d, st, k := p.d, &p.c.State, p.state
	p.checkRange(k, "cdr_days", st.CDRDays, minCDRDays, maxCDRDays)
	p.checkRange(k, "cdr_max_mb", st.CDRMaxMB, minStreamMB, maxStreamMB)
	p.checkRange(k, "events_max_mb", st.EventsMaxMB, minStreamMB, maxStreamMB)
	if !k.Bad("data_dir") {
		if st.DataDir == "" {
			d.Addf(k.Line("data_dir"), "state.data_dir is empty: name a directory for the state files, e.g. data_dir: %s", DefaultDataDir)
		}
		st.DataDir = resolvePath(p.c.Path, st.DataDir)
	}
	if !k.Bad("node_id") && st.NodeID != "" && !ValidNodeID(st.NodeID) {
		d.Addf(k.Line("node_id"), "node_id %q is not a node name: use 1–%d letters, digits, '.', '-' or '_', e.g. node_id: sw1", st.NodeID, maxNodeIDLen)
	}
	if k.Bad("nats_urls") {
		return
	}
	seen := map[string]bool{}
	for _, u := range st.NATSURLs {
		switch msg := natsURLProblem(u); {
		case msg != "":
			d.Addf(k.Line("nats_urls"), "nats_urls entry %q %s", RedactURL(u), msg)
		case seen[u]:
			d.Addf(k.Line("nats_urls"), "nats_urls entry %q is listed twice: remove one", RedactURL(u))
		}
		seen[u] = true
	}
}

// checkDebug refuses a profiling listener that is not on loopback: the
// profiles show the calls' memory and take CPU on demand, so they are for
// the host's own operator alone.
func (p *parser) checkDebug() {
	k := p.root.Section("debug")
	a := p.c.Debug.PprofListen
	if k.Bad("pprof_listen") || a == "" {
		return
	}
	host, port, err := net.SplitHostPort(a)
	ip, perr := netip.ParseAddr(host)
	n, nerr := strconv.Atoi(port)
	switch {
	case err != nil || !sipcheck.IsDigits(port) || nerr != nil || n > 65535:
		p.d.Addf(k.Line("pprof_listen"), "debug.pprof_listen %q is not host:port: write e.g. 127.0.0.1:6060", a)
	case host == "localhost":
	case perr != nil || !ip.IsLoopback():
		p.d.Addf(k.Line("pprof_listen"), "debug.pprof_listen %q is not a loopback address: profiles are served without a password, so listen on 127.0.0.1 or [::1] and reach them over SSH", a)
	}
}

// ValidNodeID reports whether id may name a node: it becomes part of state
// keys, so it keeps to letters, digits, '.', '-' and '_'.
func ValidNodeID(id string) bool {
	if id == "" || len(id) > maxNodeIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// natsURLProblem says what is wrong with a NATS server URL, or "".
func natsURLProblem(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "has no scheme: write nats://host:4222"
	}
	switch strings.ToLower(scheme) {
	case "nats", "tls":
	default:
		return "has scheme " + scheme + ": use nats:// or tls://"
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:] // user:password@ is allowed; it is never logged
	}
	host, _, msg := splitHostPort(strings.TrimSuffix(rest, "/"))
	if msg != "" || !sipcheck.ValidHost(host) {
		return "is not scheme://host:port: write e.g. nats://10.0.0.5:4222"
	}
	return ""
}

// RedactURL hides the user information of a URL, so that a NATS password
// never reaches a log or an error.
func RedactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 {
		return s
	}
	return scheme + "://***@" + rest[at+1:]
}
