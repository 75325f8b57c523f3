package siptest

import (
	"net/netip"
	"testing"

	"github.com/pion/rtp"
)

func TestDecodeG711(t *testing.T) {
	for _, tt := range []struct {
		pt   uint8
		code byte
		want int16
	}{
		{ptPCMU, 0xff, 0}, {ptPCMU, 0x7f, 0}, {ptPCMU, 0x80, 32124}, {ptPCMU, 0x00, -32124}, {ptPCMU, 0xfe, 8},
		{ptPCMA, 0xd5, 8}, {ptPCMA, 0x55, -8}, {ptPCMA, 0xaa, 32256}, {ptPCMA, 0x2a, -32256},
	} {
		got, ok := DecodeG711(tt.pt, []byte{tt.code})
		if !ok || len(got) != 1 || got[0] != tt.want {
			t.Errorf("DecodeG711(%d, %#02x) = %v %v, want %d", tt.pt, tt.code, got, ok, tt.want)
		}
	}
	if _, ok := DecodeG711(9, []byte{1}); ok {
		t.Error("DecodeG711 decoded G.722")
	}
}

func TestOnlyCodec(t *testing.T) {
	body := buildSDP(1, 1, netip.MustParseAddrPort("127.0.0.1:4000"), []uint8{ptPCMU, ptPCMA}, ptEvent, "sendrecv")
	for _, pt := range []uint8{ptPCMU, ptPCMA} {
		info, err := ParseSDP(OnlyCodec(pt)(body))
		if err != nil {
			t.Fatal(err)
		}
		pts, ev, ok := negotiate(info)
		if !ok || len(pts) != 1 || pts[0] != pt || ev != ptEvent || info.Media.Port() != 4000 {
			t.Errorf("OnlyCodec(%d) left %v (event %d) at %v", pt, pts, ev, info.Media)
		}
	}
}

func TestRecordRTP(t *testing.T) {
	c := &Call{rtp: &rtpSession{}}
	payload := []byte{1, 2, 3}
	c.rtp.recordLocked(rtp.Header{SequenceNumber: 1}, payload) // not recording yet
	c.RecordRTP(2)
	for seq := uint16(2); seq < 5; seq++ {
		c.rtp.recordLocked(rtp.Header{SequenceNumber: seq}, payload)
	}
	payload[0] = 9
	got := c.Recorded()
	if len(got) != 2 || got[0].Header.SequenceNumber != 2 || got[1].Header.SequenceNumber != 3 || got[0].Payload[0] != 1 {
		t.Errorf("recorded %+v, want packets 2 and 3 with their own copy of the payload", got)
	}
}
