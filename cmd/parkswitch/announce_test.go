package main

import (
	"bytes"
	"context"
	leBytes "encoding/binary"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/configs"
	"github.com/parkswitch/parkswitch/media"
	sw "github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// This file tests the spoken park code (SPEC §11 "Spoken code"): the parker
// still on the line hears "parked at <code>" in its codec, then the switch
// hangs its leg up.

// wavSamples reads the samples of a canonical 44-byte-header WAV, the
// layout of the built-in prompts and of media.EncodeWAV.
func wavSamples(t *testing.T, b []byte) []int16 {
	t.Helper()
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" {
		t.Fatal("not a canonical WAV")
	}
	s := make([]int16, (len(b)-44)/2)
	for i := range s {
		s[i] = int16(leBytes.LittleEndian.Uint16(b[44+2*i:]))
	}
	return s
}

// said is the audio a parker hears for code: "parked at", then each digit,
// each prompt padded with silence to whole 20 ms packets; replaced holds
// prompts that replace the built-in ones, by name.
func said(t *testing.T, code string, replaced map[string][]byte) []int16 {
	t.Helper()
	var out []int16
	for _, name := range append([]string{"parked_at"}, strings.Split(code, "")...) {
		wav, ok := replaced[name]
		if !ok {
			var err error
			if wav, err = configs.Prompts.ReadFile("prompts/" + name + ".wav"); err != nil {
				t.Fatal(err)
			}
		}
		s := wavSamples(t, wav)
		out = append(out, s...)
		out = append(out, make([]int16, (160-len(s)%160)%160)...)
	}
	return out
}

// checkHeard checks that pkts are the announcement want: one RTP stream of
// payload type pt, consecutive, whose payloads decode to want within
// G.711's quantisation, and not silence; the BYE came once it was said.
func checkHeard(t *testing.T, pkts []siptest.RTPPacket, pt uint8, want []int16, byeAt time.Time) {
	t.Helper()
	frames := len(want) / 160
	if len(pkts) != frames {
		t.Fatalf("the parker got %d RTP packets, want the %d of the announcement (%v)", len(pkts), frames, time.Duration(frames)*20*time.Millisecond)
	}
	var energy float64
	for i, p := range pkts {
		h := p.Header
		if h.PayloadType != pt || h.SSRC != pkts[0].Header.SSRC || h.SequenceNumber != pkts[0].Header.SequenceNumber+uint16(i) ||
			h.Timestamp != pkts[0].Header.Timestamp+uint32(160*i) {
			t.Fatalf("packet %d: %+v, first %+v, want payload type %d, one stream", i, h, pkts[0].Header, pt)
		}
		got, ok := siptest.DecodeG711(pt, p.Payload)
		if !ok || len(got) != 160 {
			t.Fatalf("packet %d: %d-byte payload of type %d", i, len(p.Payload), pt)
		}
		for j, v := range got {
			s := int(want[160*i+j])
			if d := abs(int(v) - s); d > abs(s)/16+16 {
				t.Fatalf("packet %d sample %d decodes to %d, the prompt says %d", i, j, v, s)
			}
			energy += float64(v) * float64(v)
		}
	}
	if rms := math.Sqrt(energy / float64(len(want))); rms < 500 {
		t.Errorf("the announcement is silence (RMS %.0f)", rms)
	}
	if said := byeAt.Sub(pkts[0].At); said < time.Duration(frames-3)*20*time.Millisecond {
		t.Errorf("BYE %v after the first packet: before the %v announcement was said", said, time.Duration(frames)*20*time.Millisecond)
	}
}

func abs(x int) int { return max(x, -x) }

// phoneEditing is a registered phone of user whose SDP edit rewrites.
func phoneEditing(t *testing.T, ctx context.Context, ts *testServer, user string, edit func([]byte) []byte) *siptest.Phone {
	t.Helper()
	p, err := siptest.NewPhone(ctx, siptest.Config{
		User: user, Password: "demo" + user, Domain: testDomain, Server: ts.udpAddr(), EditSDP: edit,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("phone", user).Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Register(ctx, 300); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return p
}

// waitBye waits for the switch to hang c up and returns when it did.
func waitBye(t *testing.T, c *siptest.Call, within time.Duration) time.Time {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(within):
		t.Fatalf("the parker's leg was not hung up within %v", within)
	}
	if r := c.EndReason(); r != siptest.EndRemoteHangup {
		t.Fatalf("the parker's call ended %s, want a BYE from the switch", r)
	}
	return time.Now()
}

// stillParked checks that the parked party hears music in its orbit, then
// hangs it up.
func stillParked(t *testing.T, ctx context.Context, ts *testServer, a *siptest.Call) {
	t.Helper()
	if n := ts.sw.Announcing(); n != 0 {
		t.Errorf("%d announcements still playing", n)
	}
	rtpFlows(t, a, 10, "music at the parked party after the announcement")
	if n := len(ts.sw.Lot().Orbits()); n != 1 {
		t.Fatalf("%d orbits, want the parked call's", n)
	}
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "orbit freed", func() bool { return len(ts.sw.Lot().Orbits()) == 0 })
}

// TestAnnounceParkCode: Bob parks Alice by REFER and stays on the line; he
// hears "parked at one zero" in the law his phone speaks, then the switch
// sends him BYE. Alice stays parked on music.
func TestAnnounceParkCode(t *testing.T) {
	for _, tt := range []struct {
		name string
		pt   uint8
		edit func([]byte) []byte
	}{
		{"PCMU", 0, nil},
		{"PCMA only", 8, siptest.OnlyCodec(8)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, "", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice := phone(t, ctx, ts, "1001", "udp")
			bob := phoneEditing(t, ctx, ts, "1002", tt.edit)
			a, b := call(t, ctx, alice, bob, "1002")
			b.RecordRTP(1000)
			code := parkCall(t, ctx, bob, b, a)
			byeAt := waitBye(t, b, 10*time.Second)
			checkHeard(t, b.Recorded(), tt.pt, said(t, code, nil), byeAt)
			stillParked(t, ctx, ts, a)
		})
	}
}

// TestAnnouncePromptsDir: a parked_at.wav in park.prompts_dir replaces the
// built-in one; the digits stay built in.
func TestAnnouncePromptsDir(t *testing.T) {
	tone := make([]int16, 2400) // 300 ms at 440 Hz
	for i := range tone {
		tone[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	wav := media.EncodeWAV(tone)
	ts := startServerWith(t, serverSetup{
		parkYAML: "  prompts_dir: prompts\n",
		files:    map[string]string{"prompts/parked_at.wav": string(wav), "prompts/notes.txt": "ours"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "tcp")
	a, b := call(t, ctx, alice, bob, "1002")
	b.RecordRTP(1000)
	code := parkCall(t, ctx, bob, b, a)
	byeAt := waitBye(t, b, 10*time.Second)
	checkHeard(t, b.Recorded(), 0, said(t, code, map[string][]byte{"parked_at": wav}), byeAt)
	stillParked(t, ctx, ts, a)
}

// TestAnnounceOff: with park.announce false the parker hears nothing after
// the park and is hung up after the release timeout, as without
// announcements.
func TestAnnounceOff(t *testing.T) {
	ts := startServerWith(t, serverSetup{
		parkYAML: "  announce: false\n",
		tune:     func(o *sw.Options) { o.ReleaseTimeout = time.Second },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	b.RecordRTP(1000)
	start := time.Now()
	parkCall(t, ctx, bob, b, a)
	waitBye(t, b, 10*time.Second)
	if since := time.Since(start); since < 900*time.Millisecond {
		t.Errorf("BYE %v after the park, before the release timeout", since)
	}
	if n := len(b.Recorded()); n != 0 {
		t.Errorf("the parker got %d RTP packets after the park, want none", n)
	}
	stillParked(t, ctx, ts, a)
}

// TestAnnounceHeldParker: a parker that put the call on hold before the
// park (as desk phones do) said it will not listen: no announcement, and
// the leg is hung up after the release timeout.
func TestAnnounceHeldParker(t *testing.T) {
	ts := startServer(t, "", func(o *sw.Options) { o.ReleaseTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	if err := b.Hold(ctx); err != nil {
		t.Fatalf("hold before park: %v", err)
	}
	nextReInvite(t, a, "held party")
	b.RecordRTP(1000)
	start := time.Now()
	parkCall(t, ctx, bob, b, a)
	waitBye(t, b, 10*time.Second)
	if since := time.Since(start); since < 900*time.Millisecond {
		t.Errorf("BYE %v after the park, before the release timeout", since)
	}
	if n := len(b.Recorded()); n != 0 {
		t.Errorf("the holding parker got %d RTP packets after the park, want none", n)
	}
	stillParked(t, ctx, ts, a)
}

// rtpSink is where a test phone's SDP sends the switch's RTP instead of
// the phone's own socket, which closes with its call: it counts what
// arrives after the phone has hung up too.
type rtpSink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func newRTPSink(t *testing.T) *rtpSink {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &rtpSink{conn: conn, done: make(chan struct{})}
	go s.read()
	t.Cleanup(func() { conn.Close(); <-s.done })
	return s
}

func (s *rtpSink) read() {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		n, _, err := s.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		var h rtp.Header
		if err == nil && n > 12 {
			if _, err := h.Unmarshal(buf[:n]); err == nil {
				s.mu.Lock()
				s.n++
				s.mu.Unlock()
			}
		}
	}
}

func (s *rtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// edit points the phone's SDP at the sink.
func (s *rtpSink) edit(body []byte) []byte {
	port := s.conn.LocalAddr().(*net.UDPAddr).Port
	return mAudio.ReplaceAll(body, []byte("m=audio "+itoa(port)+" RTP/AVP "))
}

// TestAnnounceParkerHangsUp: desk phones hang up as soon as the park is
// confirmed, or even before. The parked call stays; the parker's anchor is
// freed at once and no packet of the announcement follows the BYE.
func TestAnnounceParkerHangsUp(t *testing.T) {
	for _, after := range []string{"NOTIFY", "202"} {
		t.Run("after "+after, func(t *testing.T) {
			ts := startServer(t, "", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sink := newRTPSink(t)
			alice := phone(t, ctx, ts, "1001", "udp")
			bob := phoneEditing(t, ctx, ts, "1002", sink.edit)
			a, b := call(t, ctx, alice, bob, "1002")
			if code, err := b.Refer(ctx, parkURI); err != nil || code != 202 {
				t.Fatalf("REFER to park: %d %v", code, err)
			}
			if after == "NOTIFY" {
				select {
				case n := <-b.Notifies():
					if !bytes.HasPrefix(n.Body(), []byte("SIP/2.0 200")) {
						t.Fatalf("NOTIFY %q", n.Body())
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no NOTIFY")
				}
			}
			if err := b.Hangup(ctx); err != nil {
				t.Fatalf("parker hangup: %v", err)
			}
			// The BYE is answered before the switch acts on it: allow a
			// tick in flight, then nothing more.
			waitUntil(t, time.Second, "the parker's anchor freed", func() bool {
				return ts.sw.Announcing() == 0 && ts.ports.InUse() == 1
			})
			time.Sleep(100 * time.Millisecond)
			n := sink.count()
			time.Sleep(600 * time.Millisecond)
			if more := sink.count() - n; more != 0 {
				t.Errorf("%d announcement packets after the parker's BYE", more)
			}
			t.Logf("%d announcement packets before the BYE", n)
			waitUntil(t, 5*time.Second, "Alice parked", func() bool { return len(ts.sw.Lot().Orbits()) == 1 })
			stillParked(t, ctx, ts, a)
		})
	}
}

// TestAnnounceSRTPParker: a parker whose leg is SRTP (SDES over TLS) hears
// the announcement encrypted under its leg's key.
func TestAnnounceSRTPParker(t *testing.T) {
	ts := startTLSServer(t, serverSetup{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sm := newSRTPMedia(t)
	alice, err := siptest.NewPhone(ctx, siptest.Config{
		User: "1001", Password: "demo1001", Domain: testDomain, Server: ts.sw.Addr("tls").String(),
		Transport: "tls", TLS: tlsCert(t).ServerConfig(), EditSDP: sm.edit,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("phone", "1001").Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	if err := alice.Register(ctx, 300); err != nil {
		t.Fatal(err)
	}
	carol := phone(t, ctx, ts, "1003", "udp")
	a, c := call(t, ctx, alice, carol, "1003")
	sm.keyFrom(a.RemoteSDP())
	mark := sm.decrypted.Load()

	if code, err := a.Refer(ctx, parkURI); err != nil || code != 202 {
		t.Fatalf("REFER to park: %d %v", code, err)
	}
	nextReInvite(t, c, "parked party")
	var code string
	select {
	case m := <-alice.Messages():
		_, code, _ = strings.Cut(string(m.Body()), "parked at ")
	case <-time.After(5 * time.Second):
		t.Fatal("no park code")
	}
	waitBye(t, a, 10*time.Second)
	frames := uint64(len(said(t, code, nil)) / 160)
	// The reader may still be decrypting the last packets.
	waitUntil(t, time.Second, "the encrypted announcement", func() bool { return sm.decrypted.Load()-mark >= frames })
	if got := sm.decrypted.Load() - mark; got != frames || sm.failed.Load() != 0 {
		t.Errorf("the SRTP parker decrypted %d packets (%d failed), want the %d of the announcement", got, sm.failed.Load(), frames)
	}
	stillParked(t, ctx, ts, c)
}
