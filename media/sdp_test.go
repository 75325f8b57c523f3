package media

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// Offers as the phones of the field send them (addresses changed).
var (
	linphoneOffer = crlf(`v=0
o=1001 3040 1427 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b
a=ice-ufrag:70c6fb2f
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-mux
a=rtcp:7079
a=candidate:1 1 UDP 2130706303 192.168.1.20 7078 typ host
a=candidate:1 2 UDP 2130706302 192.168.1.20 7079 typ host
a=candidate:2 1 UDP 1694498687 203.0.113.7 7078 typ srflx raddr 192.168.1.20 rport 7078
a=candidate:2 2 UDP 1694498686 203.0.113.7 7079 typ srflx raddr 192.168.1.20 rport 7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
`)
	baresipOffer = crlf(`v=0
o=- 1176519735 2389082330 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 10002 RTP/AVP 0 8 101
b=AS:80
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:2934584563 cname:1a2b3c4d
a=rtcp-rsize
a=ptime:20
`)
	// SIPp's uac scenario: static payload type, no rtpmap needed.
	sippOffer = crlf(`v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
`)
	// A desk phone putting the call on hold.
	holdOffer = crlf(`v=0
o=- 20049 20051 IN IP4 10.0.0.31
s=SDP data
c=IN IP4 10.0.0.31
t=0 0
m=audio 11800 RTP/AVP 0 8 18 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=fmtp:101 0-15
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=sendonly
`)
	// RFC 2543 hold, still sent by old gateways.
	oldHoldOffer = crlf(`v=0
o=CiscoSystemsSIP-GW-UserAgent 4384 9294 IN IP4 192.0.2.10
s=SIP Call
c=IN IP4 0.0.0.0
t=0 0
m=audio 17246 RTP/AVP 8 101
c=IN IP4 0.0.0.0
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
`)
	videoOffer = crlf(`v=0
o=1002 811 2288 IN IP4 192.168.1.21
s=Talk
c=IN IP4 192.168.1.21
t=0 0
a=sendrecv
m=audio 7078 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
m=video 9078 RTP/AVP 96
c=IN IP4 192.168.1.21
a=rtpmap:96 VP8/90000
a=candidate:1 1 UDP 2130706303 192.168.1.21 9078 typ host
`)
	// A disabled first audio stream (RFC 3264 §8.2) before the live one,
	// whose media-level c= overrides the session's.
	twoAudioOffer = crlf(`v=0
o=- 1 1 IN IP4 198.51.100.2
s=-
c=IN IP4 198.51.100.2
t=0 0
m=audio 0 RTP/SAVP 0
m=audio 5004 RTP/AVP 8
c=IN IP4 198.51.100.3
a=inactive
`)
	ipv6Offer = crlf(`v=0
o=- 7 7 IN IP6 2001:db8::20
s=-
c=IN IP6 2001:db8::20
t=0 0
m=audio 4000 RTP/AVP 0
a=recvonly
`)
	t38Offer = crlf(`v=0
o=- 1 2 IN IP4 192.0.2.44
s=-
c=IN IP4 192.0.2.44
t=0 0
m=image 4002 udptl t38
a=T38FaxVersion:0
`)
)

func TestParseOffer(t *testing.T) {
	f := func(pt uint8, name string, rate uint32, ch int, fmtp string) Format {
		return Format{PayloadType: pt, Name: name, ClockRate: rate, Channels: ch, Fmtp: fmtp}
	}
	tests := []struct {
		name   string
		body   []byte
		want   Description
		onHold bool
	}{
		{"Linphone with rtcp-mux and ICE", linphoneOffer, Description{
			Addr: netip.MustParseAddrPort("192.168.1.20:7078"), Proto: "RTP/AVP", RTCPMux: true, Direction: SendRecv,
			Formats: []Format{
				f(96, "opus", 48000, 2, "useinbandfec=1"), f(97, "speex", 16000, 0, "vbr=on"), f(98, "speex", 8000, 0, "vbr=on"),
				f(0, "PCMU", 8000, 0, ""), f(8, "PCMA", 8000, 0, ""), f(18, "G729", 8000, 0, "annexb=yes"),
				f(101, "telephone-event", 48000, 0, ""), f(99, "telephone-event", 16000, 0, ""), f(100, "telephone-event", 8000, 0, ""),
			},
		}, false},
		{"baresip", baresipOffer, Description{
			Addr: netip.MustParseAddrPort("127.0.0.1:10002"), Proto: "RTP/AVP", Direction: SendRecv, Ptime: 20,
			Formats: []Format{f(0, "PCMU", 8000, 0, ""), f(8, "PCMA", 8000, 0, ""), f(101, "telephone-event", 8000, 0, "0-15")},
		}, false},
		{"SIPp without rtpmap", sippOffer, Description{
			Addr: netip.MustParseAddrPort("127.0.0.1:6000"), Proto: "RTP/AVP", Direction: SendRecv,
			Formats: []Format{f(0, "PCMU", 8000, 0, "")},
		}, false},
		{"sendonly hold", holdOffer, Description{
			Addr: netip.MustParseAddrPort("10.0.0.31:11800"), Proto: "RTP/AVP", Direction: SendOnly, Ptime: 20,
			Formats: []Format{
				f(0, "PCMU", 8000, 0, ""), f(8, "PCMA", 8000, 0, ""), f(18, "G729", 8000, 0, "annexb=no"),
				f(9, "G722", 8000, 0, ""), f(101, "telephone-event", 8000, 0, "0-15"),
			},
		}, true},
		{"c=0.0.0.0 hold", oldHoldOffer, Description{
			Addr: netip.MustParseAddrPort("0.0.0.0:17246"), Proto: "RTP/AVP", Direction: SendRecv, Ptime: 20,
			Formats: []Format{f(8, "PCMA", 8000, 0, ""), f(101, "telephone-event", 8000, 0, "0-16")},
		}, true},
		{"audio and video, session direction", videoOffer, Description{
			Addr: netip.MustParseAddrPort("192.168.1.21:7078"), Proto: "RTP/AVP", Direction: SendRecv,
			Formats: []Format{f(0, "PCMU", 8000, 0, ""), f(8, "PCMA", 8000, 0, ""), f(101, "telephone-event", 8000, 0, "")},
		}, false},
		{"disabled audio first, media-level c=", twoAudioOffer, Description{
			Addr: netip.MustParseAddrPort("198.51.100.3:5004"), Proto: "RTP/AVP", Direction: Inactive,
			Formats: []Format{f(8, "PCMA", 8000, 0, "")},
		}, true},
		{"IPv6", ipv6Offer, Description{
			Addr: netip.MustParseAddrPort("[2001:db8::20]:4000"), Proto: "RTP/AVP", Direction: RecvOnly,
			Formats: []Format{f(0, "PCMU", 8000, 0, "")},
		}, false},
		{"LF line ends", []byte(strings.ReplaceAll(string(sippOffer), "\r\n", "\n")), Description{
			Addr: netip.MustParseAddrPort("127.0.0.1:6000"), Proto: "RTP/AVP", Direction: SendRecv,
			Formats: []Format{f(0, "PCMU", 8000, 0, "")},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOffer(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if got.OnHold() != tt.onHold {
				t.Errorf("OnHold = %v, want %v", got.OnHold(), tt.onHold)
			}
		})
	}
}

func TestParseOfferErrors(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrBadSDP},
		{"blank", []byte("\r\n"), ErrBadSDP},
		{"not SDP", []byte("hello"), ErrBadSDP},
		{"SIP message fragment", []byte("INVITE sip:1001@example.com SIP/2.0\r\n"), ErrBadSDP},
		{"no t= line", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\n"), ErrBadSDP},
		{"no c= for audio", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n"), ErrBadSDP},
		{"host name in c=", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 pbx.example.com\nt=0 0\nm=audio 4000 RTP/AVP 0\n"), ErrBadSDP},
		{"payload type not a number", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP PCMU\n"), ErrBadSDP},
		{"payload type out of range", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 200\n"), ErrBadSDP},
		{"port out of range", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 70000 RTP/AVP 0\n"), ErrBadSDP},
		{"no media", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"), ErrNoAudio},
		{"video only", crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=video 4000 RTP/AVP 96\n"), ErrNoAudio},
		{"T.38 fax", t38Offer, ErrNoAudio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOffer(tt.body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseOffer: %v, want %v", err, tt.want)
			}
			if _, err := NewSDPWriter(loopback).Rewrite(tt.body, 30000, ""); !errors.Is(err, tt.want) {
				t.Fatalf("Rewrite: %v, want %v", err, tt.want)
			}
		})
	}
}

var switchIP = netip.MustParseAddr("198.51.100.1")

func TestRewrite(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		dir     Direction
		wantDir Direction
		rtcp    bool // a=rtcp present
		video   bool // a disabled m=video line is kept
	}{
		{"Linphone", linphoneOffer, "", SendRecv, true, false},
		{"baresip", baresipOffer, "", SendRecv, false, false},
		{"SIPp", sippOffer, "", SendRecv, false, false},
		{"hold kept", holdOffer, "", SendOnly, false, false},
		{"hold answered", holdOffer, RecvOnly, RecvOnly, false, false},
		{"resume forced", holdOffer, SendRecv, SendRecv, false, false},
		{"old-style hold becomes sendonly", oldHoldOffer, "", SendOnly, false, false},
		{"old-style hold, explicit direction wins", oldHoldOffer, Inactive, Inactive, false, false},
		{"video disabled", videoOffer, "", SendRecv, false, true},
		{"session direction replaced", videoOffer, SendOnly, SendOnly, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseOffer(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			w := NewSDPWriter(switchIP)
			out, err := w.Rewrite(tt.body, 30000, tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseOffer(out)
			if err != nil {
				t.Fatalf("rewritten body does not parse: %v\n%s", err, out)
			}
			s := string(out)
			if want := "o=parkswitch " + strconv.FormatUint(w.SessionID(), 10) + " 1 IN IP4 198.51.100.1\r\n"; !strings.Contains(s, want) {
				t.Errorf("origin: want %q in\n%s", want, s)
			}
			if got.Addr != netip.MustParseAddrPort("198.51.100.1:30000") {
				t.Errorf("audio at %v", got.Addr)
			}
			if n := strings.Count(s, "\nc=IN IP4 198.51.100.1\r\n"); n != strings.Count(s, "\nc=") {
				t.Errorf("a c= line not rewritten:\n%s", s)
			}
			if got.Direction != tt.wantDir {
				t.Errorf("direction %v, want %v", got.Direction, tt.wantDir)
			}
			if n := strings.Count(s, "a=sendrecv") + strings.Count(s, "a=sendonly") +
				strings.Count(s, "a=recvonly") + strings.Count(s, "a=inactive"); tt.dir != "" && n != 1 {
				t.Errorf("%d direction attributes:\n%s", n, s)
			}
			if got.RTCPMux != in.RTCPMux {
				t.Errorf("rtcp-mux %v, offered %v", got.RTCPMux, in.RTCPMux)
			}
			if has := strings.Contains(s, "a=rtcp:30001 IN IP4 198.51.100.1\r\n"); has != tt.rtcp {
				t.Errorf("a=rtcp rewritten: %v, want %v", has, tt.rtcp)
			}
			if strings.Contains(s, "candidate") || strings.Contains(s, "a=ice-") {
				t.Errorf("ICE attributes left:\n%s", s)
			}
			for _, leak := range []string{"192.168.1.", "127.0.0.1", "10.0.0.31", "0.0.0.0", "192.0.2.10"} {
				if strings.Contains(s, leak) {
					t.Errorf("the other leg's address %s leaks:\n%s", leak, s)
				}
			}
			if !reflect.DeepEqual(got.Formats, in.Formats) || got.Ptime != in.Ptime {
				t.Errorf("formats changed: %v → %v", in.Formats, got.Formats)
			}
			if tt.video != strings.Contains(s, "m=video 0 RTP/AVP 96\r\n") {
				t.Errorf("video line:\n%s", s)
			}
		})
	}
}

// TestRewriteGolden pins the whole body for one offer, so that any change to
// what legs see is deliberate.
func TestRewriteGolden(t *testing.T) {
	w := NewSDPWriter(switchIP)
	w.sessionID = 4242
	out, err := w.Rewrite(baresipOffer, 30000, "")
	if err != nil {
		t.Fatal(err)
	}
	want := crlf(`v=0
o=parkswitch 4242 1 IN IP4 198.51.100.1
s=parkswitch
c=IN IP4 198.51.100.1
t=0 0
a=tool:baresip 1.0.0
m=audio 30000 RTP/AVP 0 8 101
b=AS:80
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:2934584563 cname:1a2b3c4d
a=rtcp-rsize
a=ptime:20
`)
	if string(out) != string(want) {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestRewriteKeepsDisabledAudio(t *testing.T) {
	body := crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 0 RTP/AVP 0\n")
	out, err := NewSDPWriter(switchIP).Rewrite(body, 30000, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "m=audio 0 RTP/AVP 0\r\n") {
		t.Errorf("a rejected stream came back to life:\n%s", out)
	}
}

func TestRewriteIPv6(t *testing.T) {
	w := NewSDPWriter(netip.MustParseAddr("2001:db8::1"))
	out, err := w.Rewrite(sippOffer, 30000, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseOffer(out)
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr != netip.MustParseAddrPort("[2001:db8::1]:30000") || !strings.Contains(string(out), " IN IP6 2001:db8::1\r\n") {
		t.Errorf("IPv6 rewrite:\n%s", out)
	}
}

func TestSDPWriterVersion(t *testing.T) {
	w := NewSDPWriter(switchIP)
	steps := []struct {
		name    string
		produce func() ([]byte, error)
		version uint64
	}{
		{"first body", func() ([]byte, error) { return w.Rewrite(baresipOffer, 30000, "") }, 1},
		{"same again (retransmitted offer)", func() ([]byte, error) { return w.Rewrite(baresipOffer, 30000, "") }, 1},
		{"same media from another origin", func() ([]byte, error) {
			return w.Rewrite([]byte(strings.Replace(string(baresipOffer), "2389082330", "2389082331", 1)), 30000, "")
		}, 1},
		{"hold", func() ([]byte, error) { return w.Rewrite(baresipOffer, 30000, SendOnly) }, 2},
		{"hold repeated", func() ([]byte, error) { return w.Rewrite(baresipOffer, 30000, SendOnly) }, 2},
		{"resume", func() ([]byte, error) { return w.Rewrite(baresipOffer, 30000, "") }, 3},
		{"retrieved by another phone", func() ([]byte, error) { return w.Rewrite(sippOffer, 30000, "") }, 4},
		{"new port", func() ([]byte, error) { return w.Rewrite(sippOffer, 30002, "") }, 5},
		{"switch's own offer", func() ([]byte, error) { return w.Offer(30002, []Format{PCMU}, SendOnly), nil }, 6},
		{"own offer repeated", func() ([]byte, error) { return w.Offer(30002, []Format{PCMU}, SendOnly), nil }, 6},
	}
	for _, st := range steps {
		out, err := st.produce()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want := "o=parkswitch " + strconv.FormatUint(w.SessionID(), 10) + " " + strconv.FormatUint(st.version, 10) + " "
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: want %q in\n%s", st.name, want, out)
		}
	}
}

func TestSDPWriterSessionIDs(t *testing.T) {
	seen := map[uint64]bool{}
	for range 100 {
		id := NewSDPWriter(switchIP).SessionID()
		if seen[id] || id >= 1<<62 {
			t.Fatalf("session id %d repeated or too large", id)
		}
		seen[id] = true
	}
}

func TestOffer(t *testing.T) {
	tests := []struct {
		name    string
		formats []Format
		dir     Direction
		wantDir Direction
	}{
		{"music on hold", []Format{PCMU, PCMA, TelephoneEvent}, SendOnly, SendOnly},
		{"default direction", []Format{PCMA}, "", SendRecv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := NewSDPWriter(switchIP).Offer(30000, tt.formats, tt.dir)
			d, err := ParseOffer(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			want := Description{
				Addr: netip.MustParseAddrPort("198.51.100.1:30000"), Proto: "RTP/AVP",
				Direction: tt.wantDir, Formats: tt.formats, Ptime: 20,
			}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("got  %+v\nwant %+v\n%s", d, want, out)
			}
		})
	}
}

func TestDirectionAnswer(t *testing.T) {
	tests := []struct{ offer, answer Direction }{
		{SendRecv, SendRecv},
		{SendOnly, RecvOnly},
		{RecvOnly, SendOnly},
		{Inactive, Inactive},
		{"", SendRecv},
	}
	for _, tt := range tests {
		if got := tt.offer.Answer(); got != tt.answer {
			t.Errorf("%q.Answer() = %q, want %q", tt.offer, got, tt.answer)
		}
	}
}

func TestDescriptionFormat(t *testing.T) {
	d, err := ParseOffer(linphoneOffer)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rate uint32
		pt   uint8
		ok   bool
	}{
		{"pcma", 8000, 8, true},
		{"telephone-event", 8000, 100, true},
		{"TELEPHONE-EVENT", 48000, 101, true},
		{"G722", 8000, 0, false},
	}
	for _, tt := range tests {
		f, ok := d.Format(tt.name, tt.rate)
		if ok != tt.ok || ok && f.PayloadType != tt.pt {
			t.Errorf("Format(%s/%d) = %v %v", tt.name, tt.rate, f, ok)
		}
	}
}

func TestResumeSDPWriter(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	w := NewSDPWriter(ip)
	formats := []Format{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}
	w.Offer(20000, formats, SendRecv)
	prev := w.Offer(20000, formats, SendOnly) // version 2
	r := ResumeSDPWriter(ip, prev)
	if r.SessionID() != w.SessionID() {
		t.Fatalf("session id %d, want %d", r.SessionID(), w.SessionID())
	}
	if got := r.Offer(20000, formats, SendOnly); string(got) != string(prev) {
		t.Errorf("the same body again changed:\n%s\nwas\n%s", got, prev)
	}
	next := r.Offer(20000, formats, Inactive)
	if !strings.Contains(string(next), "o=parkswitch "+strconv.FormatUint(w.SessionID(), 10)+" 3 IN IP4") {
		t.Errorf("changed body after resume:\n%s", next)
	}
	if fresh := ResumeSDPWriter(ip, []byte("not sdp")); fresh.SessionID() == w.SessionID() {
		t.Error("garbage resumed the old session")
	}
}

// TestRewriteSession: a body parsed once rewrites as RewriteKeyed rewrites
// it, for every fork, and the session itself is left as it was.
func TestRewriteSession(t *testing.T) {
	for _, body := range [][]byte{linphoneOffer, sippOffer, holdOffer, oldHoldOffer, videoOffer} {
		s, err := ParseSession(body, false)
		if err != nil {
			t.Fatal(err)
		}
		before, err := s.sd.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for _, dir := range []Direction{"", SendOnly, RecvOnly} {
			want, err := NewSDPWriter(switchIP).RewriteKeyed(body, 30000, dir, Keying{})
			if err != nil {
				t.Fatal(err)
			}
			for fork := range 2 {
				got, err := NewSDPWriter(switchIP).RewriteSession(s, 30000, dir, Keying{})
				if err != nil {
					t.Fatal(err)
				}
				// The origin's session ID is each writer's own.
				if strip(got) != strip(want) {
					t.Errorf("fork %d, direction %q:\n%s\nwant\n%s", fork, dir, got, want)
				}
			}
		}
		after, _ := s.sd.Marshal()
		if string(after) != string(before) {
			t.Errorf("the session changed:\n%s\nwas\n%s", after, before)
		}
	}
}

func strip(b []byte) string {
	var keep []string
	for l := range strings.SplitSeq(string(b), "\r\n") {
		if !strings.HasPrefix(l, "o=") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\r\n")
}
