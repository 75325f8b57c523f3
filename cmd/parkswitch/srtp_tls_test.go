package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/sip/siptest"
)

// srtpMedia is the SRTP side of a test phone, done with pion/srtp: its SDP
// (through siptest's EditSDP) points at a socket of its own and carries its
// own key; what arrives is decrypted with the key the switch answered.
type srtpMedia struct {
	t      *testing.T
	conn   *net.UDPConn
	own    media.Key
	enc    *srtp.Context
	seq    uint16
	mu     sync.Mutex
	dec    *srtp.Context
	decKey media.Key

	decrypted, failed atomic.Uint64
	done              chan struct{}
}

func newSRTPMedia(t *testing.T) *srtpMedia {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	own, err := media.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := srtp.CreateContext(own.Master[:], own.Salt[:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	m := &srtpMedia{t: t, conn: conn, own: own, enc: enc, seq: 1000, done: make(chan struct{})}
	go m.read()
	t.Cleanup(func() { conn.Close(); <-m.done })
	return m
}

var mAudio = regexp.MustCompile(`m=audio \d+ RTP/AVP `)

// edit is the phone's EditSDP: our socket, RTP/SAVP and our key.
func (m *srtpMedia) edit(body []byte) []byte {
	port := m.conn.LocalAddr().(*net.UDPAddr).Port
	s := mAudio.ReplaceAllString(string(body), "m=audio "+itoa(port)+" RTP/SAVP ")
	line := "a=crypto:" + media.Crypto{Tag: 1, Key: m.own}.Attribute() + "\r\n"
	return []byte(strings.Replace(s, "a=ptime:", line+"a=ptime:", 1))
}

// inline is our key as written in our SDP.
func (m *srtpMedia) inline() string {
	return strings.Fields(media.Crypto{Tag: 1, Key: m.own}.Attribute())[2]
}

// keyFrom reads the switch's SDP for us: its key must be its own, and it
// becomes our decryption key. It returns where to send.
func (m *srtpMedia) keyFrom(body []byte) netip.AddrPort {
	m.t.Helper()
	d, err := media.Parse(body, true)
	if err != nil || d.SRTP == nil || d.Proto != "RTP/SAVP" {
		m.t.Fatalf("the switch's SDP is not SRTP (%v):\n%s", err, body)
	}
	if d.SRTP.Key == m.own || strings.Contains(string(body), m.inline()) {
		m.t.Fatal("the switch echoed the phone's own key")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dec == nil || m.decKey != d.SRTP.Key {
		dec, err := srtp.CreateContext(d.SRTP.Key.Master[:], d.SRTP.Key.Salt[:], srtp.ProtectionProfileAes128CmHmacSha1_80,
			srtp.SRTPReplayProtection(64))
		if err != nil {
			m.t.Fatal(err)
		}
		m.dec, m.decKey = dec, d.SRTP.Key
	}
	return d.Addr
}

func (m *srtpMedia) read() {
	defer close(m.done)
	buf := make([]byte, 2048)
	for {
		n, _, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m.mu.Lock()
		dec := m.dec
		var derr error = errors.New("no key yet")
		if dec != nil {
			_, derr = dec.DecryptRTP(nil, buf[:n], nil)
		}
		m.mu.Unlock()
		if derr != nil {
			m.failed.Add(1)
			continue
		}
		m.decrypted.Add(1)
	}
}

// send sends n SRTP packets to dst, 2 ms apart.
func (m *srtpMedia) send(dst netip.AddrPort, n int) {
	m.t.Helper()
	for range n {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: m.seq, Timestamp: uint32(m.seq) * 160, SSRC: 0xa11ce}, Payload: make([]byte, 160)}
		m.seq++
		plain, err := pkt.Marshal()
		if err != nil {
			m.t.Fatal(err)
		}
		enc, err := m.enc.EncryptRTP(nil, plain, nil)
		if err != nil {
			m.t.Fatal(err)
		}
		if _, err := m.conn.WriteToUDPAddrPort(enc, dst); err != nil {
			m.t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitDecrypted waits until n packets more than at mark were decrypted.
func (m *srtpMedia) waitDecrypted(mark, n uint64, what string) {
	m.t.Helper()
	waitUntil(m.t, 5*time.Second, what, func() bool { return m.decrypted.Load()-mark >= n })
}

// plainHasNoKeys checks that SDP sent to a plain leg carries no key.
func plainHasNoKeys(t *testing.T, who string, body []byte, inline string) {
	t.Helper()
	s := string(body)
	if strings.Contains(s, "a=crypto") || strings.Contains(s, inline) || !strings.Contains(s, "RTP/AVP") {
		t.Errorf("%s is not plain RTP/AVP without keys:\n%s", who, s)
	}
}

// TestSRTPOverTLSBridgedToRTP: an SRTP phone over TLS calls an RTP phone
// over UDP. The UDP phone is offered plain RTP without any key; the TLS
// phone gets the switch's own key; packets flow both ways, counted at the
// RTP phone and decrypted with pion/srtp at the SRTP phone. The RTP phone
// then parks the call: music on hold reaches the SRTP phone encrypted; a
// third phone (UDP) retrieves it and talks to it both ways.
func TestSRTPOverTLSBridgedToRTP(t *testing.T) {
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
		t.Fatalf("register over TLS: %v", err)
	}
	carol := phone(t, ctx, ts, "1003", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")

	a, c := call(t, ctx, alice, carol, "1003")
	plainHasNoKeys(t, "the UDP callee's offer", c.LastRemoteOffer(), sm.inline())
	dst := sm.keyFrom(a.RemoteSDP())

	c0 := c.RTPReceived()
	sm.send(dst, 40)
	waitUntil(t, 5*time.Second, "SRTP decrypted into RTP at the UDP phone", func() bool { return c.RTPReceived()-c0 >= 36 })
	mark := sm.decrypted.Load()
	if err := c.SendRTP(ctx, 40, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sm.waitDecrypted(mark, 36, "RTP encrypted into SRTP at the TLS phone")

	// Park the SRTP phone: the music comes encrypted.
	if code, err := c.Refer(ctx, parkURI); err != nil || code != 202 {
		t.Fatalf("REFER to park: %d %v", code, err)
	}
	offer := nextReInvite(t, a, "parked SRTP phone")
	if siptest.SDPDirection(offer.Body()) != "sendonly" {
		t.Errorf("park offer:\n%s", offer.Body())
	}
	mark = sm.decrypted.Load()
	sm.keyFrom(offer.Body())
	sm.waitDecrypted(mark, 10, "encrypted music on hold")
	var code string
	select {
	case msg := <-carol.Messages():
		body := string(msg.Body())
		code = strings.TrimSpace(body[strings.Index(body, "parked at ")+len("parked at "):])
	case <-time.After(5 * time.Second):
		t.Fatal("no park code")
	}
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	// Bob retrieves over UDP: plain for him, SRTP for Alice.
	r, err := bob.Dial(ctx, code)
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	offer = nextReInvite(t, a, "retrieved SRTP phone")
	plainHasNoKeys(t, "the retriever's answer", r.RemoteSDP(), sm.inline())
	dst = sm.keyFrom(offer.Body())
	r0 := r.RTPReceived()
	sm.send(dst, 40)
	waitUntil(t, 5*time.Second, "SRTP at the retriever", func() bool { return r.RTPReceived()-r0 >= 36 })
	mark = sm.decrypted.Load()
	if err := r.SendRTP(ctx, 40, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sm.waitDecrypted(mark, 36, "the retriever's RTP encrypted for the SRTP phone")
	if f := sm.failed.Load(); f != 0 {
		t.Errorf("%d packets at the SRTP phone failed to decrypt", f)
	}
	hangUp(t, ctx, a, r, "retriever")
}
