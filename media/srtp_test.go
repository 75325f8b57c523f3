package media

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// srtpPeer is a far end speaking SRTP with pion/srtp: it encrypts with its
// own key (which the switch's endpoint decrypts with) and decrypts with the
// key the switch gave it.
type srtpPeer struct {
	own, switchKey Key
	enc, dec       *srtp.Context
}

func newSRTPPeer(t testing.TB) (*srtpPeer, *SRTP) {
	t.Helper()
	own, sw := mustKey(t), mustKey(t)
	enc, err := srtp.CreateContext(own.Master[:], own.Salt[:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(sw.Master[:], sw.Salt[:], srtp.ProtectionProfileAes128CmHmacSha1_80,
		srtp.SRTPReplayProtection(64), srtp.SRTCPReplayProtection(64))
	if err != nil {
		t.Fatal(err)
	}
	return &srtpPeer{own: own, switchKey: sw, enc: enc, dec: dec}, &SRTP{Local: sw, Remote: own}
}

func mustKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *srtpPeer) protect(t testing.TB, pkt []byte) []byte {
	t.Helper()
	out, err := p.enc.EncryptRTP(nil, pkt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (p *srtpPeer) protectRTCP(t testing.TB, pkt []byte) []byte {
	t.Helper()
	out, err := p.enc.EncryptRTCP(nil, pkt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (p *srtpPeer) open(t testing.TB, pkt []byte) []byte {
	t.Helper()
	out, err := p.dec.DecryptRTP(nil, pkt, nil)
	if err != nil {
		t.Fatalf("far end cannot decrypt the switch's SRTP: %v", err)
	}
	return out
}

func (p *srtpPeer) openRTCP(t testing.TB, pkt []byte) []byte {
	t.Helper()
	out, err := p.dec.DecryptRTCP(nil, pkt, nil)
	if err != nil {
		t.Fatalf("far end cannot decrypt the switch's SRTCP: %v", err)
	}
	return out
}

func setSRTP(t testing.TB, e *Endpoint, k *SRTP) {
	t.Helper()
	if err := e.SetSRTP(k); err != nil {
		t.Fatal(err)
	}
}

// srtpBridge bridges a, whose far end pa speaks SRTP under far's keys,
// to b, whose far end pb speaks plain RTP.
func srtpBridge(t *testing.T) (a, b *Endpoint, pa, pb *phone, far *srtpPeer, keys *SRTP) {
	t.Helper()
	pool := testPool(t, 2)
	a, b = openEndpoint(t, pool), openEndpoint(t, pool)
	pa, pb = newPhonePair(t), newPhonePair(t)
	a.SetRemote(pa.addr(), false)
	b.SetRemote(pb.addr(), false)
	far, keys = newSRTPPeer(t)
	setSRTP(t, a, keys)
	Bridge(a, b)
	return a, b, pa, pb, far, keys
}

// TestSRTPToRTP bridges an SRTP leg to a plain one over real sockets: the
// plain phone hears exactly what the SRTP phone sent before encryption,
// and the SRTP phone decrypts the plain phone's audio with the key the
// switch gave it, RTCP included.
func TestSRTPToRTP(t *testing.T) {
	a, b, pa, pb, far, _ := srtpBridge(t)

	for i := range 20 {
		plain := g711(uint16(100 + i))
		enc := far.protect(t, plain)
		if bytes.Equal(enc[12:172], plain[12:]) {
			t.Fatal("pion did not encrypt the payload")
		}
		send(t, pa.rtp, a.Addr(), enc)
		if got, _ := recv(t, pb.rtp); !bytes.Equal(got, plain) {
			t.Fatalf("packet %d: plain side got %d bytes, not the decrypted packet", i, len(got))
		}

		reply := g711(uint16(900 + i))
		send(t, pb.rtp, b.Addr(), reply)
		got, src := recv(t, pa.rtp)
		if src != a.Addr() || len(got) != len(reply)+authTagLen {
			t.Fatalf("SRTP side got %d bytes from %v", len(got), src)
		}
		if !bytes.Equal(far.open(t, got), reply) {
			t.Fatalf("packet %d: decrypted reply differs", i)
		}
	}

	// SRTCP on the RTCP ports.
	rr := receiverReport(7)
	send(t, pa.rtcp, rtcpAddr(a.Addr()), far.protectRTCP(t, rr))
	if got, _ := recv(t, pb.rtcp); !bytes.Equal(got, rr) {
		t.Errorf("plain side got RTCP %x, want %x", got, rr)
	}
	rr = receiverReport(8)
	send(t, pb.rtcp, rtcpAddr(b.Addr()), rr)
	got, _ := recv(t, pa.rtcp)
	if !bytes.Equal(far.openRTCP(t, got), rr) {
		t.Error("SRTCP reply differs once decrypted")
	}
	if s := a.Stats(); s.AuthFailed != 0 || s.Dropped != 0 {
		t.Errorf("SRTP side stats %+v", s)
	}
}

// TestSRTPToSRTP: two SRTP legs, each with its own keys. What one phone
// sends reaches the other re-encrypted with the other leg's key: the
// bytes on the wire differ, the decrypted packets are the same.
func TestSRTPToSRTP(t *testing.T) {
	pool := testPool(t, 2)
	a, b := openEndpoint(t, pool), openEndpoint(t, pool)
	pa, pb := newPhonePair(t), newPhonePair(t)
	a.SetRemote(pa.addr(), true) // rtcp-mux on one side
	b.SetRemote(pb.addr(), false)
	farA, keysA := newSRTPPeer(t)
	farB, keysB := newSRTPPeer(t)
	setSRTP(t, a, keysA)
	setSRTP(t, b, keysB)
	Bridge(a, b)

	for i := range 20 {
		plain := g711(uint16(65530 + i)) // across a sequence number wrap
		enc := farA.protect(t, plain)
		send(t, pa.rtp, a.Addr(), enc)
		got, _ := recv(t, pb.rtp)
		if bytes.Equal(got, enc) {
			t.Fatal("SRTP passed through with the sender's key")
		}
		if !bytes.Equal(farB.open(t, got), plain) {
			t.Fatalf("packet %d differs once decrypted at the far end", i)
		}
		back := g711(uint16(i))
		send(t, pb.rtp, b.Addr(), farB.protect(t, back))
		got, _ = recv(t, pa.rtp)
		if !bytes.Equal(farA.open(t, got), back) {
			t.Fatalf("reply %d differs once decrypted", i)
		}
	}
	// SRTCP from the muxed side to the separate RTCP port and back.
	rr := receiverReport(9)
	send(t, pa.rtp, a.Addr(), farA.protectRTCP(t, rr))
	got, _ := recv(t, pb.rtcp)
	if !bytes.Equal(farB.openRTCP(t, got), rr) {
		t.Error("SRTCP a→b differs once decrypted")
	}
	rr = receiverReport(10)
	send(t, pb.rtcp, rtcpAddr(b.Addr()), farB.protectRTCP(t, rr))
	got, _ = recv(t, pa.rtp)
	if !bytes.Equal(farA.openRTCP(t, got), rr) {
		t.Error("SRTCP b→a differs once decrypted")
	}
}

// TestSRTPRefusesForgedAndReplayed: a replayed packet, a tampered one, one
// under another key and plain RTP on an SRTP leg never reach the peer, and
// do not latch the path.
func TestSRTPRefusesForgedAndReplayed(t *testing.T) {
	a, _, pa, pb, far, _ := srtpBridge(t)

	good := far.protect(t, g711(1))
	send(t, pa.rtp, a.Addr(), good)
	recv(t, pb.rtp)

	stranger, _ := newSRTPPeer(t)
	tampered := far.protect(t, g711(2))
	tampered[20] ^= 1
	for name, pkt := range map[string][]byte{
		"replayed":      good,
		"tampered":      tampered,
		"other key":     stranger.protect(t, g711(3)),
		"plain RTP":     g711(4),
		"truncated tag": far.protect(t, g711(5))[:170],
	} {
		send(t, pa.rtp, a.Addr(), pkt)
		t.Run(name, func(t *testing.T) { expectNone(t, pb.rtp) })
	}
	if s := a.Stats(); s.AuthFailed != 5 || s.PacketsIn != 1 {
		t.Errorf("stats %+v, want 5 auth failures and 1 packet in", s)
	}
	// The next genuine packet still flows.
	send(t, pa.rtp, a.Addr(), far.protect(t, g711(6)))
	if got, _ := recv(t, pb.rtp); !bytes.Equal(got, g711(6)) {
		t.Error("genuine packet after the forgeries not relayed")
	}
}

// TestSRTPRekey: a re-INVITE that repeats the keys keeps the contexts
// (the stream carries on); a new remote key takes over at once.
func TestSRTPRekey(t *testing.T) {
	a, b, pa, pb, far, keys := srtpBridge(t)
	first := far.protect(t, g711(1))
	send(t, pa.rtp, a.Addr(), first)
	recv(t, pb.rtp)
	setSRTP(t, a, keys) // same keys: the replay list survives
	send(t, pa.rtp, a.Addr(), first)
	expectNone(t, pb.rtp)

	next, keys2 := newSRTPPeer(t)
	setSRTP(t, a, keys2)
	send(t, pa.rtp, a.Addr(), next.protect(t, g711(2)))
	if got, _ := recv(t, pb.rtp); !bytes.Equal(got, g711(2)) {
		t.Error("packet under the new key not relayed")
	}
	send(t, pb.rtp, b.Addr(), g711(3))
	got, _ := recv(t, pa.rtp)
	if !bytes.Equal(next.open(t, got), g711(3)) {
		t.Error("reply not under the new local key")
	}
	setSRTP(t, a, nil)
	send(t, pa.rtp, a.Addr(), g711(4))
	if got, _ := recv(t, pb.rtp); !bytes.Equal(got, g711(4)) {
		t.Error("plain RTP after SRTP was switched off not relayed")
	}
}

// TestSRTPMusicOnHold: music on hold reaches an SRTP leg encrypted under
// that leg's key, with a plain leg hearing the same shared stream in clear.
func TestSRTPMusicOnHold(t *testing.T) {
	m := testMusic(t)
	pool := testPool(t, 2)
	sec, plain := openEndpoint(t, pool), openEndpoint(t, pool)
	ps, pp := newPhone(t), newPhone(t)
	sec.SetRemote(ps.addr(), false)
	plain.SetRemote(pp.addr(), false)
	far, keys := newSRTPPeer(t)
	setSRTP(t, sec, keys)
	for _, e := range []*Endpoint{sec, plain} {
		stop, err := m.Attach(e, PCMU)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var last uint16
	for i := range 10 {
		enc, _ := recv(t, ps.rtp)
		if len(enc) != mohPacketLen+authTagLen {
			t.Fatalf("SRTP music packet of %d bytes", len(enc))
		}
		var h rtp.Header
		if _, err := h.Unmarshal(far.open(t, enc)); err != nil {
			t.Fatal(err)
		}
		if i > 0 && h.SequenceNumber != last+1 {
			t.Errorf("sequence %d after %d", h.SequenceNumber, last)
		}
		last = h.SequenceNumber
		if clear, _ := recv(t, pp.rtp); len(clear) != mohPacketLen {
			t.Fatalf("plain music packet of %d bytes", len(clear))
		}
	}
}

func TestParseCrypto(t *testing.T) {
	k := mustKey(t)
	line := Crypto{Tag: 3, Key: k}.Attribute()
	if !strings.HasPrefix(line, "3 AES_CM_128_HMAC_SHA1_80 inline:") {
		t.Fatalf("attribute %q", line)
	}
	c, ok := parseCrypto(line)
	if !ok || c.Tag != 3 || c.Key != k {
		t.Fatalf("round trip: %+v %v", c, ok)
	}
	b64 := strings.TrimPrefix(strings.Fields(line)[2], "inline:")
	for _, tt := range []struct {
		v  string
		ok bool
	}{
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^20", true},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + strings.TrimRight(b64, "="), true},
		{"1 AES_CM_128_HMAC_SHA1_32 inline:" + b64, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^20|1:4", false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + " UNENCRYPTED_SRTP", false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + ";inline:" + b64, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", false},
		{"x AES_CM_128_HMAC_SHA1_80 inline:" + b64, false},
	} {
		if _, ok := parseCrypto(tt.v); ok != tt.ok {
			t.Errorf("parseCrypto(%q) = %v, want %v", tt.v, ok, tt.ok)
		}
	}
}

// srtpStream is a run of SRTP packets from a far end, made ahead so that
// the allocation test and the benchmarks measure the relay only; each is
// copied into a buffer with room for in-place re-encryption.
func srtpStream(t testing.TB, far *srtpPeer, first uint16, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = far.protect(t, g711(first+uint16(i)))
	}
	return out
}

// TestSRTPRelayAllocs keeps the SRTP per-packet path allocation-free in
// both directions that involve crypto.
func TestSRTPRelayAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector; run without -race")
	}
	pool := testPool(t, 2)
	a, b := openEndpoint(t, pool), openEndpoint(t, pool)
	pa, pb := newPhone(t), newPhone(t)
	a.SetRemote(pa.addr(), false)
	b.SetRemote(pb.addr(), false)
	farA, keysA := newSRTPPeer(t)
	_, keysB := newSRTPPeer(t)
	setSRTP(t, a, keysA)
	setSRTP(t, b, keysB)
	Bridge(a, b)
	const runs = 1000
	stream := srtpStream(t, farA, 1, runs+2)
	buf := make([]byte, bufSize+srtpRoom)
	src := pa.addr()
	i := 0
	next := func() []byte { n := copy(buf, stream[i]); i++; return buf[:n] }
	a.relay(next(), src, false) // latch, and the SSRC's first state
	if allocs := testing.AllocsPerRun(runs, func() { a.relay(next(), src, false) }); allocs != 0 {
		t.Errorf("SRTP→SRTP relay allocates %v times per packet", allocs)
	}
	// RTP→SRTP: b's plain side in, a's SRTP side out.
	setSRTP(t, b, nil)
	plain, srcB := g711(1), pb.addr()
	b.relay(append(buf[:0], plain...), srcB, false)
	if allocs := testing.AllocsPerRun(runs, func() { b.relay(append(buf[:0], plain...), srcB, false) }); allocs != 0 {
		t.Errorf("RTP→SRTP relay allocates %v times per packet", allocs)
	}
	if a.Stats().Dropped+b.Stats().Dropped != 0 {
		t.Errorf("dropped %d + %d", a.Stats().Dropped, b.Stats().Dropped)
	}
}
