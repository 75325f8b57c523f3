package media

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/sdp/v3"
)

var (
	// ErrBadSDP is returned for a body that is not valid SDP (the SIP layer
	// answers 400).
	ErrBadSDP = errors.New("media: malformed SDP")
	// ErrNoAudio is returned for valid SDP without an audio stream (the SIP
	// layer answers 488).
	ErrNoAudio = errors.New("media: no audio stream in SDP")
)

// Direction is a media direction attribute (RFC 3264 §5.1).
type Direction string

// The four directions; an SDP without one means SendRecv.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// Answer is the direction an answer gives to an offer of d (RFC 3264 §6.1):
// a sendonly (hold) offer is answered recvonly, not sendrecv, which some
// carriers treat as an error.
func (d Direction) Answer() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	}
	return SendRecv
}

func parseDirection(s string) (Direction, bool) {
	switch d := Direction(s); d {
	case SendRecv, SendOnly, RecvOnly, Inactive:
		return d, true
	}
	return "", false
}

// Format is one payload format of the audio stream.
type Format struct {
	PayloadType uint8
	Name        string // encoding name as written, e.g. "PCMU", "telephone-event"
	ClockRate   uint32
	Channels    int    // 0 when not written
	Fmtp        string // a=fmtp parameters, e.g. "0-16"
}

// Formats the switch offers itself.
var (
	PCMU           = Format{PayloadType: 0, Name: "PCMU", ClockRate: 8000}
	PCMA           = Format{PayloadType: 8, Name: "PCMA", ClockRate: 8000}
	TelephoneEvent = Format{PayloadType: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"}
)

// String is the rtpmap encoding, e.g. "PCMU/8000" or "opus/48000/2".
func (f Format) String() string {
	s := f.Name + "/" + strconv.FormatUint(uint64(f.ClockRate), 10)
	if f.Channels > 0 {
		s += "/" + strconv.Itoa(f.Channels)
	}
	return s
}

// staticFormats are the audio payload types that need no rtpmap (RFC 3551 §6).
var staticFormats = map[uint8]Format{
	0:  {Name: "PCMU", ClockRate: 8000},
	3:  {Name: "GSM", ClockRate: 8000},
	4:  {Name: "G723", ClockRate: 8000},
	5:  {Name: "DVI4", ClockRate: 8000},
	6:  {Name: "DVI4", ClockRate: 16000},
	7:  {Name: "LPC", ClockRate: 8000},
	8:  {Name: "PCMA", ClockRate: 8000},
	9:  {Name: "G722", ClockRate: 8000},
	10: {Name: "L16", ClockRate: 44100, Channels: 2},
	11: {Name: "L16", ClockRate: 44100},
	12: {Name: "QCELP", ClockRate: 8000},
	13: {Name: "CN", ClockRate: 8000},
	14: {Name: "MPA", ClockRate: 90000},
	15: {Name: "G728", ClockRate: 8000},
	16: {Name: "DVI4", ClockRate: 11025},
	17: {Name: "DVI4", ClockRate: 22050},
	18: {Name: "G729", ClockRate: 8000},
}

// Description is what the switch needs from a leg's SDP: where and how the
// leg receives its audio.
type Description struct {
	Addr      netip.AddrPort // audio c= (media level over session level) and m= port
	Proto     string         // e.g. "RTP/AVP"
	RTCPMux   bool
	Direction Direction // media level over session level; SendRecv if absent
	Formats   []Format  // in the order of the m= line
	Ptime     int       // milliseconds; 0 if not given
	// SRTP is the leg's a=crypto the switch accepts for this stream: the
	// key the leg encrypts with. Nil for plain RTP, and always nil when
	// the leg may not use SDES.
	SRTP *Crypto
}

// OnHold reports whether the leg asks not to receive media: sendonly or
// inactive, or the old-style c=0.0.0.0 (RFC 3264 §8.4).
func (d Description) OnHold() bool {
	return d.Direction == SendOnly || d.Direction == Inactive || d.Addr.Addr().IsUnspecified()
}

// Format returns the first format with the given encoding name (case
// insensitive, as in RFC 4855 §3) and clock rate.
func (d Description) Format(name string, clockRate uint32) (Format, bool) {
	for _, f := range d.Formats {
		if strings.EqualFold(f.Name, name) && f.ClockRate == clockRate {
			return f, true
		}
	}
	return Format{}, false
}

// EventPayloadType is the payload type of the stream's telephone-event
// (RFC 4733), preferring the 8 kHz one when there are several; -1 when
// there is none.
func (d Description) EventPayloadType() int { return EventPayloadType(d.Formats) }

// EventPayloadType is the payload type of telephone-event among formats,
// as Description.EventPayloadType.
func EventPayloadType(formats []Format) int {
	pt := -1
	for _, f := range formats {
		if !strings.EqualFold(f.Name, TelephoneEvent.Name) {
			continue
		}
		if f.ClockRate == TelephoneEvent.ClockRate {
			return int(f.PayloadType)
		}
		if pt < 0 {
			pt = int(f.PayloadType)
		}
	}
	return pt
}

// ParseOffer reads the audio stream of an SDP offer or answer from a leg
// that may not use SDES: Parse(body, false).
func ParseOffer(body []byte) (Description, error) { return Parse(body, false) }

// Parse reads the audio stream of an SDP offer or answer. sdes says
// whether the leg it came from may use SDES keys (its signaling is
// TLS-protected, RFC 4568 §8.3). The anchored stream is the first audio m=
// line with a non-zero port that the switch can take: an RTP/SAVP one only
// with sdes and an a=crypto of our suite. With sdes, an a=crypto of our
// suite on that stream (RTP/SAVP, or RTP/AVP as best-effort SRTP) makes it
// SRTP. An offer whose only live audio is SRTP is ErrSRTPNotAllowed
// without sdes and ErrNoCryptoSuite without a usable a=crypto.
func Parse(body []byte, sdes bool) (Description, error) {
	s, err := ParseSession(body, sdes)
	if err != nil {
		return Description{}, err
	}
	return s.Description, nil
}

// Session is an SDP body read once: what Parse says of it, kept with the
// parsed body so that rewriting it for the other leg (RewriteSession)
// does not parse it again. It is not changed once made, so one Session
// serves every fork of a call.
type Session struct {
	Description
	sd   *sdp.SessionDescription
	ai   int  // index of the anchored audio stream
	sdes bool // as given to ParseSession
}

// ParseSession is Parse, keeping the parsed body for RewriteSession.
func ParseSession(body []byte, sdes bool) (*Session, error) {
	sd, err := unmarshal(body)
	if err != nil {
		return nil, err
	}
	d, ai, err := describe(sd, sdes)
	if err != nil {
		return nil, err
	}
	return &Session{Description: d, sd: sd, ai: ai, sdes: sdes}, nil
}

// clone copies what a rewrite changes: the session, its attribute lists
// and its media descriptions.
func (s *Session) clone() *sdp.SessionDescription {
	sd := *s.sd
	sd.Attributes = slices.Clone(s.sd.Attributes)
	sd.MediaDescriptions = make([]*sdp.MediaDescription, len(s.sd.MediaDescriptions))
	for i, md := range s.sd.MediaDescriptions {
		m := *md
		m.Attributes = slices.Clone(md.Attributes)
		sd.MediaDescriptions[i] = &m
	}
	return &sd
}

// describe reads the anchored audio stream of sd and returns its index.
func describe(sd *sdp.SessionDescription, sdes bool) (Description, int, error) {
	i, err := audioIndex(sd, sdes)
	if err != nil {
		return Description{}, -1, err
	}
	md := sd.MediaDescriptions[i]
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return Description{}, -1, fmt.Errorf("%w: audio stream without c=", ErrBadSDP)
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return Description{}, -1, fmt.Errorf("%w: c= address %q", ErrBadSDP, ci.Address.Address)
	}
	d := Description{
		Addr:      netip.AddrPortFrom(ip.Unmap(), uint16(md.MediaName.Port.Value)),
		Proto:     strings.Join(md.MediaName.Protos, "/"),
		Direction: direction(sd, md),
	}
	_, d.RTCPMux = md.Attribute("rtcp-mux")
	ptime, ok := md.Attribute("ptime")
	if !ok {
		ptime, _ = sd.Attribute("ptime")
	}
	d.Ptime, _ = strconv.Atoi(strings.TrimSpace(ptime))
	if d.Formats, err = formats(md); err != nil {
		return Description{}, -1, err
	}
	if sdes {
		if c, ok := usableCrypto(md); ok {
			d.SRTP = &c
		}
	}
	return d, i, nil
}

// securedProto reports an SRTP profile (RTP/SAVP, RTP/SAVPF, and the
// DTLS-SRTP ones, which the switch does not terminate).
func securedProto(protos []string) bool {
	for _, p := range protos {
		if strings.HasPrefix(strings.ToUpper(p), "SAVP") {
			return true
		}
	}
	return false
}

// usableCrypto is the first a=crypto of the stream the switch can use.
func usableCrypto(md *sdp.MediaDescription) (Crypto, bool) {
	if len(md.MediaName.Protos) > 0 && strings.EqualFold(md.MediaName.Protos[0], "UDP") {
		return Crypto{}, false // DTLS-SRTP (UDP/TLS/RTP/SAVP): keys are not in the SDP
	}
	for _, a := range md.Attributes {
		if a.Key == "crypto" {
			if c, ok := parseCrypto(a.Value); ok {
				return c, true
			}
		}
	}
	return Crypto{}, false
}

func unmarshal(body []byte) (*sdp.SessionDescription, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrBadSDP)
	}
	sd := new(sdp.SessionDescription)
	if err := sd.Unmarshal(body); err != nil {
		// The parser knows only some media types, so a T.38 offer (m=image
		// udptl) fails to parse; it must still be declined with 488, which
		// fax gateways answer by falling back to G.711, not with 400.
		if hasMedia(body, "") && !hasMedia(body, "audio") {
			return nil, fmt.Errorf("%w (%v)", ErrNoAudio, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return sd, nil
}

// hasMedia reports whether body has an m= line of the given media type, or
// of any type when media is "".
func hasMedia(body []byte, media string) bool {
	for line := range bytes.Lines(body) {
		rest, ok := bytes.CutPrefix(line, []byte("m="))
		if !ok {
			continue
		}
		if media == "" || bytes.HasPrefix(rest, []byte(media+" ")) {
			return true
		}
	}
	return false
}

// audioIndex is the audio stream the switch anchors: the first audio m= line
// with a port the switch can take (see Parse), else the first audio m=
// line, disabled.
func audioIndex(sd *sdp.SessionDescription, sdes bool) (int, error) {
	first := -1
	var refused error
	for i, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		if md.MediaName.Port.Value == 0 {
			if first < 0 {
				first = i
			}
			continue
		}
		if securedProto(md.MediaName.Protos) {
			if !sdes {
				refused = ErrSRTPNotAllowed
				continue
			}
			if _, ok := usableCrypto(md); !ok {
				if refused == nil {
					refused = ErrNoCryptoSuite
				}
				continue
			}
		}
		return i, nil
	}
	switch {
	case refused != nil:
		return -1, refused
	case first < 0:
		return -1, ErrNoAudio
	}
	return first, nil
}

// plainProto is the RTP profile of an SRTP one: RTP/SAVP → RTP/AVP.
func plainProto(protos []string) []string {
	if !securedProto(protos) {
		return protos
	}
	if strings.HasSuffix(strings.ToUpper(protos[len(protos)-1]), "SAVPF") {
		return []string{"RTP", "AVPF"}
	}
	return []string{"RTP", "AVP"}
}

// Keying is how SRTP applies to a body being rewritten for a leg.
type Keying struct {
	// FromSDES says whether the body's author may use SDES, which decides
	// its anchored stream as in Parse.
	FromSDES bool
	// Crypto is the switch's own a=crypto for the leg written to; nil
	// writes plain RTP.
	Crypto *Crypto
	// Proto is the profile to write with Crypto, e.g. the RTP/AVP of a
	// best-effort offer being answered; "" means RTP/SAVP (RTP/SAVPF for
	// feedback profiles).
	Proto string
}

// protos is the m= profile for the anchored stream under k.
func (k Keying) protos(src []string) []string {
	plain := plainProto(src)
	if k.Crypto == nil {
		return plain
	}
	if k.Proto != "" {
		return strings.Split(k.Proto, "/")
	}
	if plain[len(plain)-1] == "AVPF" {
		return []string{"RTP", "SAVPF"}
	}
	return []string{"RTP", "SAVP"}
}

func direction(sd *sdp.SessionDescription, md *sdp.MediaDescription) Direction {
	for _, a := range md.Attributes {
		if d, ok := parseDirection(a.Key); ok {
			return d
		}
	}
	for _, a := range sd.Attributes {
		if d, ok := parseDirection(a.Key); ok {
			return d
		}
	}
	return SendRecv
}

func formats(md *sdp.MediaDescription) ([]Format, error) {
	out := make([]Format, 0, len(md.MediaName.Formats))
	for _, s := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(s, 10, 8)
		if err != nil || pt > 127 {
			return nil, fmt.Errorf("%w: payload type %q", ErrBadSDP, s)
		}
		f := staticFormats[uint8(pt)]
		f.PayloadType = uint8(pt)
		for _, a := range md.Attributes {
			switch a.Key {
			case "rtpmap":
				if p, enc, ok := strings.Cut(a.Value, " "); ok && p == s {
					parseRtpmap(&f, enc)
				}
			case "fmtp":
				if p, params, ok := strings.Cut(a.Value, " "); ok && p == s {
					f.Fmtp = strings.TrimSpace(params)
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// parseRtpmap reads "<name>/<clock rate>[/<channels>]"; an unreadable rate
// or channel count is left at zero rather than failing the whole offer.
func parseRtpmap(f *Format, enc string) {
	parts := strings.Split(strings.TrimSpace(enc), "/")
	f.Name, f.ClockRate, f.Channels = parts[0], 0, 0
	if len(parts) > 1 {
		if r, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
			f.ClockRate = uint32(r)
		}
	}
	if len(parts) > 2 {
		f.Channels, _ = strconv.Atoi(parts[2])
	}
}

// iceAttributes are dropped: the switch anchors the media, so the leg's
// candidates are neither reachable nor meant for the other leg. So are the
// keying attributes: a leg's keys are never passed to the other leg (each
// leg gets the switch's own), and DTLS is not terminated here.
var iceAttributes = map[string]bool{
	"crypto":            true,
	"fingerprint":       true,
	"setup":             true,
	"candidate":         true,
	"remote-candidates": true,
	"end-of-candidates": true,
	"ice-ufrag":         true,
	"ice-pwd":           true,
	"ice-options":       true,
	"ice-lite":          true,
	"ice-mismatch":      true,
	"ice-pacing":        true,
}

// SDPWriter produces the SDP the switch sends to one leg. A B2BUA is the SDP
// originator towards each leg, so every body carries the writer's own origin
// (RFC 4566 §5.2) whatever leg it was derived from, and its version moves
// only when the body changes (RFC 3264 §8). Safe for concurrent use.
type SDPWriter struct {
	ip       netip.Addr
	addrType string

	mu        sync.Mutex
	sessionID uint64
	version   uint64
	last      []byte // previous body, to decide on a version bump
}

// NewSDPWriter returns a writer advertising ip (the address legs send their
// media to) with a random session id.
func NewSDPWriter(ip netip.Addr) *SDPWriter {
	ip = ip.Unmap()
	at := "IP4"
	if ip.Is6() {
		at = "IP6"
	}
	// 62 bits: some parsers read the id as a signed 64-bit number.
	id := rand.Uint64N(1 << 62)
	return &SDPWriter{ip: ip, addrType: at, sessionID: id, version: 1}
}

// ResumeSDPWriter returns a writer that goes on from prev, the last body a
// writer sent on a leg (a dialog restored after a restart): same origin
// session id and version, so that the next changed body increments the
// version as RFC 3264 §8 asks. A prev that does not parse gives a new
// writer.
func ResumeSDPWriter(ip netip.Addr, prev []byte) *SDPWriter {
	w := NewSDPWriter(ip)
	var sd sdp.SessionDescription
	if len(prev) == 0 || sd.Unmarshal(prev) != nil {
		return w
	}
	w.sessionID, w.version, w.last = sd.Origin.SessionID, sd.Origin.SessionVersion, bytes.Clone(prev)
	return w
}

// SessionID is the o= session id the writer uses.
func (w *SDPWriter) SessionID() uint64 { return w.sessionID }

func (w *SDPWriter) connection() *sdp.ConnectionInformation {
	return &sdp.ConnectionInformation{
		NetworkType: "IN",
		AddressType: w.addrType,
		Address:     &sdp.Address{Address: w.ip.String()},
	}
}

// Rewrite turns an offer or answer from the other leg into one for this leg:
// our origin and c=, the audio m= port set to port (a disabled audio stream
// stays at 0), a=rtcp set to port+1, ICE attributes removed, and the
// direction set to dir unless dir is "". Codecs and other attributes pass as
// they are. Streams other than the anchored audio get port 0 (disabled, RFC
// 3264 §8.2): the switch relays only that one, and the m= lines must stay so
// that an answer keeps the offer's order.
//
// An old-style hold (audio c=0.0.0.0) with dir "" is carried over as a
// direction, since c= becomes our address: the holder does not receive, so
// sendrecv becomes sendonly and recvonly becomes inactive.
//
// Every a=crypto of the body is dropped and the anchored stream is written
// as plain RTP (see RewriteKeyed for SRTP legs).
func (w *SDPWriter) Rewrite(body []byte, port int, dir Direction) ([]byte, error) {
	return w.RewriteKeyed(body, port, dir, Keying{})
}

// RewriteKeyed is Rewrite with SRTP applied as k says: the anchored stream
// gets k's profile and, for an SRTP leg, the switch's own a=crypto for it.
func (w *SDPWriter) RewriteKeyed(body []byte, port int, dir Direction, k Keying) ([]byte, error) {
	// Validated like Parse, so that the SIP layer gets the same answer
	// whichever it calls first.
	s, err := ParseSession(body, k.FromSDES)
	if err != nil {
		return nil, err
	}
	return w.RewriteSession(s, port, dir, k)
}

// FormatsFor returns the audio formats of the stream RewriteSession
// anchors when writing s with k, or nil when k reads the body with another
// view of SDES than s was parsed with (RewriteSession picks the stream
// again then).
func (s *Session) FormatsFor(k Keying) []Format {
	if k.FromSDES != s.sdes {
		return nil
	}
	return s.Formats
}

// RewriteSession is RewriteKeyed of a body parsed already; s is not
// changed.
func (w *SDPWriter) RewriteSession(s *Session, port int, dir Direction, k Keying) ([]byte, error) {
	sd, d, ai := s.clone(), s.Description, s.ai
	if k.FromSDES != s.sdes {
		// Another author's view of the body picks its stream again.
		var err error
		if d, ai, err = describe(sd, k.FromSDES); err != nil {
			return nil, err
		}
	}
	audio := sd.MediaDescriptions[ai]
	if dir == "" && d.Addr.Addr().IsUnspecified() {
		switch d.Direction {
		case SendRecv, SendOnly:
			dir = SendOnly
		default:
			dir = Inactive
		}
	}

	sd.SessionName = "parkswitch"
	sd.ConnectionInformation = w.connection()
	sd.Attributes = filterAttributes(sd.Attributes, dir != "")
	for i, md := range sd.MediaDescriptions {
		if md.ConnectionInformation != nil {
			md.ConnectionInformation = w.connection()
		}
		md.Attributes = filterAttributes(md.Attributes, i == ai && dir != "")
		if i != ai {
			md.MediaName.Port = sdp.RangedPort{}
		}
	}
	if audio.MediaName.Port.Value != 0 {
		audio.MediaName.Port = sdp.RangedPort{Value: port}
	}
	for i := range audio.Attributes {
		if audio.Attributes[i].Key == "rtcp" {
			audio.Attributes[i].Value = fmt.Sprintf("%d IN %s %s", port+1, w.addrType, w.ip)
		}
	}
	if dir != "" {
		audio.Attributes = append(audio.Attributes, sdp.NewPropertyAttribute(string(dir)))
	}
	audio.MediaName.Protos = k.protos(audio.MediaName.Protos)
	if k.Crypto != nil {
		audio.Attributes = append(audio.Attributes, sdp.NewAttribute("crypto", k.Crypto.Attribute()))
	}
	return w.finish(sd)
}

// filterAttributes drops ICE attributes and, when the direction is being
// replaced, the direction attributes.
func filterAttributes(attrs []sdp.Attribute, dropDirection bool) []sdp.Attribute {
	out := attrs[:0]
	for _, a := range attrs {
		if iceAttributes[a.Key] {
			continue
		}
		if _, isDir := parseDirection(a.Key); isDir && dropDirection {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Offer builds an offer for media the switch sends itself (music on hold):
// one audio stream at port with formats in order, 20 ms packets, and dir
// (SendRecv if "").
func (w *SDPWriter) Offer(port int, formats []Format, dir Direction) []byte {
	return w.OfferKeyed(port, formats, dir, Keying{})
}

// OfferKeyed is Offer for an SRTP leg when k.Crypto is set.
func (w *SDPWriter) OfferKeyed(port int, formats []Format, dir Direction, k Keying) []byte {
	if dir == "" {
		dir = SendRecv
	}
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{
			Media:  "audio",
			Port:   sdp.RangedPort{Value: port},
			Protos: k.protos([]string{"RTP", "AVP"}),
		},
	}
	for _, f := range formats {
		pt := strconv.Itoa(int(f.PayloadType))
		md.MediaName.Formats = append(md.MediaName.Formats, pt)
		md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", pt+" "+f.String()))
		if f.Fmtp != "" {
			md.Attributes = append(md.Attributes, sdp.NewAttribute("fmtp", pt+" "+f.Fmtp))
		}
	}
	md.Attributes = append(md.Attributes,
		sdp.NewAttribute("ptime", "20"),
		sdp.NewPropertyAttribute(string(dir)))
	if k.Crypto != nil {
		md.Attributes = append(md.Attributes, sdp.NewAttribute("crypto", k.Crypto.Attribute()))
	}
	sd := &sdp.SessionDescription{
		SessionName:           "parkswitch",
		ConnectionInformation: w.connection(),
		TimeDescriptions:      []sdp.TimeDescription{{}},
		MediaDescriptions:     []*sdp.MediaDescription{md},
	}
	b, err := w.finish(sd)
	if err != nil {
		// Marshal fails only on a broken writer: nothing a caller can handle.
		panic(err)
	}
	return b
}

// finish sets our origin and marshals, bumping the version only if the body
// differs from the previous one (RFC 3264 §8: a repeated offer or answer
// keeps its version, a changed one increments it).
func (w *SDPWriter) finish(sd *sdp.SessionDescription) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sd.Origin = sdp.Origin{
		Username:       "parkswitch",
		SessionID:      w.sessionID,
		SessionVersion: w.version,
		NetworkType:    "IN",
		AddressType:    w.addrType,
		UnicastAddress: w.ip.String(),
	}
	b, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("media: writing SDP: %w", err)
	}
	if w.last != nil && !bytes.Equal(b, w.last) {
		w.version++
		sd.Origin.SessionVersion = w.version
		if b, err = sd.Marshal(); err != nil {
			return nil, fmt.Errorf("media: writing SDP: %w", err)
		}
	}
	w.last = b
	return bytes.Clone(b), nil
}
