package siptest

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/pion/rtp"

	"github.com/parkswitch/parkswitch/media"
)

// RTPPacket is one packet a call received, as RecordRTP keeps it.
type RTPPacket struct {
	Header  rtp.Header
	Payload []byte
	At      time.Time // when it arrived
}

// RecordRTP keeps the next n RTP packets the call receives (from now on,
// replacing an earlier recording) for Recorded; the count bounds memory.
func (c *Call) RecordRTP(n int) {
	r := c.rtp
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recMax, r.rec = n, make([]RTPPacket, 0, min(n, 4096))
}

// Recorded returns the packets kept since RecordRTP, in arrival order.
func (c *Call) Recorded() []RTPPacket {
	r := c.rtp
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rec)
}

// recordLocked keeps a received packet while the recording has room; it
// needs r.mu.
func (r *rtpSession) recordLocked(h rtp.Header, payload []byte) {
	if len(r.rec) >= r.recMax {
		return
	}
	h.CSRC = slices.Clone(h.CSRC)
	h.Extensions = nil
	r.rec = append(r.rec, RTPPacket{Header: h, Payload: bytes.Clone(payload), At: time.Now()})
}

// DecodeG711 is what a phone plays of a PCMU (payload type 0) or PCMA (8)
// payload: 16-bit linear samples (media.ULawToLinear, media.ALawToLinear).
// Other payload types report false.
func DecodeG711(pt uint8, payload []byte) ([]int16, bool) {
	var expand func(byte) int16
	switch pt {
	case ptPCMU:
		expand = media.ULawToLinear
	case ptPCMA:
		expand = media.ALawToLinear
	default:
		return nil, false
	}
	out := make([]int16, len(payload))
	for i, c := range payload {
		out[i] = expand(c)
	}
	return out, true
}

// audioLine is the audio m= line of an SDP body, its formats in group 2.
var audioLine = regexp.MustCompile(`(?m)^(m=audio \d+ [A-Z/]+)((?: \d+)+)\r$`)

// OnlyCodec is a Config.EditSDP that leaves only payload type pt (0 PCMU
// or 8 PCMA) and telephone-event in the phone's SDP: a phone that speaks
// one law.
func OnlyCodec(pt uint8) func([]byte) []byte {
	drop := ptPCMU
	if pt == ptPCMU {
		drop = ptPCMA
	}
	other := strconv.Itoa(drop)
	rtpmap := []byte(fmt.Sprintf("a=rtpmap:%d ", drop))
	return func(body []byte) []byte {
		lines := bytes.SplitAfter(body, []byte("\n"))
		out := make([]byte, 0, len(body))
		for _, l := range lines {
			if bytes.HasPrefix(l, rtpmap) {
				continue
			}
			if m := audioLine.FindSubmatch(l); m != nil {
				var fs []byte
				for _, f := range bytes.Fields(m[2]) {
					if string(f) != other {
						fs = append(append(fs, ' '), f...)
					}
				}
				l = append(append(append([]byte{}, m[1]...), fs...), "\r\n"...)
			}
			out = append(out, l...)
		}
		return out
	}
}
