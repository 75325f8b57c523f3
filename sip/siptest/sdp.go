package siptest

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Payload types the phone offers: PCMU, PCMA and telephone-event.
const (
	ptPCMU    = 0
	ptPCMA    = 8
	ptEvent   = 101
	noEventPT = -1
)

// SDPInfo is what the phone understood of a session description.
type SDPInfo struct {
	// Media is the c= address with the m=audio port.
	Media netip.AddrPort
	// Direction is sendrecv, sendonly, recvonly or inactive (a rejected
	// stream, port 0, counts as inactive).
	Direction string
	// Formats lists the payload types of the m=audio line in order.
	Formats []uint8
	// EventPT is the telephone-event payload type, or -1 when absent.
	EventPT int
}

// ParseSDP extracts the first live audio stream of body (the first audio
// stream when all are disabled, port 0).
func ParseSDP(body []byte) (SDPInfo, error) {
	info := SDPInfo{EventPT: noEventPT}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return info, fmt.Errorf("siptest: bad SDP: %w", err)
	}
	var md *sdp.MediaDescription
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		if md == nil || md.MediaName.Port.Value == 0 {
			md = m
		}
		if m.MediaName.Port.Value != 0 {
			break
		}
	}
	if md == nil {
		return info, errors.New("siptest: SDP has no audio stream")
	}
	conn := md.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return info, errors.New("siptest: SDP has no connection address")
	}
	addr, err := netip.ParseAddr(strings.SplitN(conn.Address.Address, "/", 2)[0])
	if err != nil {
		return info, fmt.Errorf("siptest: SDP connection address: %w", err)
	}
	port := md.MediaName.Port.Value
	if port < 0 || port > 65535 {
		return info, fmt.Errorf("siptest: SDP port %d", port)
	}
	info.Media = netip.AddrPortFrom(addr.Unmap(), uint16(port))

	for _, f := range md.MediaName.Formats {
		pt, err := strconv.Atoi(f)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		info.Formats = append(info.Formats, uint8(pt))
		if pt >= 96 {
			if v, ok := rtpmap(md, f); ok && strings.HasPrefix(strings.ToLower(v), "telephone-event/") {
				info.EventPT = pt
			}
		}
	}

	info.Direction = direction(md.Attributes)
	if info.Direction == "" {
		info.Direction = direction(sd.Attributes)
	}
	if info.Direction == "" {
		info.Direction = "sendrecv"
	}
	if port == 0 {
		info.Direction = "inactive"
	}
	return info, nil
}

// SDPDirection returns the direction of the audio stream in body, or "" when
// body is not a usable SDP.
func SDPDirection(body []byte) string {
	info, err := ParseSDP(body)
	if err != nil {
		return ""
	}
	return info.Direction
}

func rtpmap(md *sdp.MediaDescription, pt string) (string, bool) {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		if p, v, ok := strings.Cut(a.Value, " "); ok && p == pt {
			return v, true
		}
	}
	return "", false
}

func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}

// negotiate keeps the offered audio codecs the phone supports, in the
// offerer's order and with its payload type numbers (RFC 3264 §6.1).
func negotiate(offer SDPInfo) (pts []uint8, eventPT int, ok bool) {
	for _, f := range offer.Formats {
		if f == ptPCMU || f == ptPCMA {
			pts = append(pts, f)
		}
	}
	return pts, offer.EventPT, len(pts) > 0
}

// answerDirection mirrors the offer as RFC 3264 §6.1 asks, keeping a local
// hold in place.
func answerDirection(offer string, localHold bool) string {
	switch offer {
	case "sendonly":
		if localHold {
			return "inactive"
		}
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	default:
		if localHold {
			return "sendonly"
		}
		return "sendrecv"
	}
}

// answerMatches reports whether an answer direction is acceptable for the
// direction the phone offered.
func answerMatches(offered, answered string) bool {
	switch offered {
	case "sendonly":
		return answered == "recvonly" || answered == "inactive"
	case "recvonly":
		return answered == "sendonly" || answered == "inactive"
	case "inactive":
		return answered == "inactive"
	default:
		// RFC 3264 §6.1: a sendrecv offer may be answered with any
		// direction (a switch playing music answers sendonly).
		return answered == "sendrecv" || answered == "sendonly" || answered == "recvonly" || answered == "inactive"
	}
}

func buildSDP(sessID, version uint64, media netip.AddrPort, pts []uint8, eventPT int, dir string) []byte {
	var b strings.Builder
	ip := media.Addr().String()
	fmt.Fprintf(&b, "v=0\r\no=- %d %d IN IP4 %s\r\ns=siptest\r\nc=IN IP4 %s\r\nt=0 0\r\n", sessID, version, ip, ip)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP", media.Port())
	for _, pt := range pts {
		fmt.Fprintf(&b, " %d", pt)
	}
	if eventPT >= 0 {
		fmt.Fprintf(&b, " %d", eventPT)
	}
	b.WriteString("\r\n")
	for _, pt := range pts {
		switch pt {
		case ptPCMU:
			b.WriteString("a=rtpmap:0 PCMU/8000\r\n")
		case ptPCMA:
			b.WriteString("a=rtpmap:8 PCMA/8000\r\n")
		}
	}
	if eventPT >= 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", eventPT, eventPT)
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", dir)
	return []byte(b.String())
}
