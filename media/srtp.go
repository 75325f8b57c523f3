package media

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP is terminated at the relay per leg (SDES, RFC 4568): each leg that
// negotiates it gets the switch's own master key, so what one phone sends
// is decrypted on its endpoint and, for an SRTP peer, encrypted again with
// the peer leg's key. No leg ever learns another leg's key.

// Suite is the one SDES crypto suite the switch speaks (RFC 4568 §6.2.1).
const Suite = "AES_CM_128_HMAC_SHA1_80"

const (
	keyLen     = 16 // AES-128 master key
	saltLen    = 14 // master salt
	authTagLen = 10 // HMAC-SHA1-80
	// replayWindow is the replay list of RFC 3711 §3.3.2 (64 is its minimum).
	replayWindow = 64
)

var (
	// ErrSRTPNotAllowed is returned for an offer whose only audio is
	// RTP/SAVP on a leg that may not use SDES (no TLS): the keys would
	// travel in clear text, so the SIP layer answers 488.
	ErrSRTPNotAllowed = errors.New("media: SRTP offered over a transport without TLS")
	// ErrNoCryptoSuite is returned for RTP/SAVP audio without an a=crypto
	// the switch can use (the SIP layer answers 488).
	ErrNoCryptoSuite = errors.New("media: no usable a=crypto (" + Suite + ") in SRTP offer")
)

// Key is an AES_CM_128_HMAC_SHA1_80 master key and salt.
type Key struct {
	Master [keyLen]byte
	Salt   [saltLen]byte
}

// NewKey draws a fresh master key and salt from crypto/rand.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k.Master[:]); err != nil {
		return Key{}, fmt.Errorf("media: SRTP key: %w", err)
	}
	if _, err := rand.Read(k.Salt[:]); err != nil {
		return Key{}, fmt.Errorf("media: SRTP salt: %w", err)
	}
	return k, nil
}

// inline is the key-params of RFC 4568 §6.1: base64 of key || salt.
func (k Key) inline() string {
	var b [keyLen + saltLen]byte
	copy(b[:], k.Master[:])
	copy(b[keyLen:], k.Salt[:])
	return "inline:" + base64.StdEncoding.EncodeToString(b[:])
}

// Crypto is one a=crypto line: its tag and key.
type Crypto struct {
	Tag int
	Key Key
}

// Attribute is the a=crypto value, e.g. "1 AES_CM_128_HMAC_SHA1_80 inline:...".
func (c Crypto) Attribute() string {
	return strconv.Itoa(c.Tag) + " " + Suite + " " + c.Key.inline()
}

// parseCrypto reads an a=crypto value (RFC 4568 §9.1) and reports whether
// the switch can use it: our suite, one key without MKI, and no session
// parameters (UNENCRYPTED_SRTP and the like change the packet format).
func parseCrypto(v string) (Crypto, bool) {
	f := strings.Fields(v)
	if len(f) != 3 || !strings.EqualFold(f[1], Suite) {
		return Crypto{}, false
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return Crypto{}, false
	}
	params := f[2]
	if len(params) < 7 || !strings.EqualFold(params[:7], "inline:") || strings.Contains(params, ";") {
		return Crypto{}, false // several keys
	}
	b64, life, _ := strings.Cut(params[7:], "|")
	// A lifetime is advice; an MKI would need a field in every packet.
	if strings.Contains(life, ":") || strings.Contains(life, "|") {
		return Crypto{}, false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Some phones drop the base64 padding.
		if raw, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return Crypto{}, false
		}
	}
	if len(raw) != keyLen+saltLen {
		return Crypto{}, false
	}
	c := Crypto{Tag: tag}
	copy(c.Key.Master[:], raw[:keyLen])
	copy(c.Key.Salt[:], raw[keyLen:])
	return c, true
}

// SRTP is the keying of an endpoint: Local encrypts what the switch sends
// to the leg, Remote decrypts what the leg sends.
type SRTP struct {
	Local, Remote Key
}

// srtpIn decrypts what the remote sends. The mutex covers both contexts:
// RTCP may arrive on either socket (rtcp-mux), and a pion context is not
// safe for concurrent use. It is uncontended in practice.
type srtpIn struct {
	key  Key
	mu   sync.Mutex
	rtp  *srtp.Context
	rtcp *srtp.Context
	rh   rtp.Header  // reused by DecryptRTP: no allocation per packet
	rch  rtcp.Header // likewise for SRTCP
}

// srtpOut encrypts what is sent to the remote: relayed packets from the
// peer's reader and music on hold. buf holds an encrypted copy of a packet
// whose buffer the caller keeps (WriteRTP).
type srtpOut struct {
	key  Key
	mu   sync.Mutex
	rtp  *srtp.Context
	rtcp *srtp.Context
	rh   rtp.Header
	rch  rtcp.Header
	buf  [bufSize + authTagLen + 4]byte
}

// cryptoState is published atomically; nil halves mean plain RTP.
type cryptoState struct {
	in  *srtpIn
	out *srtpOut
}

func newContext(k Key, replay bool) (*srtp.Context, error) {
	var opts []srtp.ContextOption
	if replay {
		opts = append(opts, srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
	}
	c, err := srtp.CreateContext(k.Master[:], k.Salt[:], srtp.ProtectionProfileAes128CmHmacSha1_80, opts...)
	if err != nil {
		return nil, fmt.Errorf("media: SRTP context: %w", err)
	}
	return c, nil
}

func newSRTPIn(k Key) (*srtpIn, error) {
	r, err := newContext(k, true)
	if err != nil {
		return nil, err
	}
	rc, err := newContext(k, true)
	if err != nil {
		return nil, err
	}
	return &srtpIn{key: k, rtp: r, rtcp: rc}, nil
}

func newSRTPOut(k Key) (*srtpOut, error) {
	r, err := newContext(k, false)
	if err != nil {
		return nil, err
	}
	rc, err := newContext(k, false)
	if err != nil {
		return nil, err
	}
	return &srtpOut{key: k, rtp: r, rtcp: rc}, nil
}

// SetSRTP keys the endpoint (nil: plain RTP). A key that did not change
// keeps its context, so the rollover counters and replay lists carry on
// across a re-INVITE that repeats the keys; a new key starts afresh.
func (e *Endpoint) SetSRTP(k *SRTP) error {
	e.cryptoMu.Lock()
	defer e.cryptoMu.Unlock()
	if k == nil {
		e.crypto.Store(&cryptoState{})
		return nil
	}
	cur := e.crypto.Load()
	next := &cryptoState{in: cur.in, out: cur.out}
	if next.in == nil || next.in.key != k.Remote {
		in, err := newSRTPIn(k.Remote)
		if err != nil {
			return err
		}
		next.in = in
	}
	if next.out == nil || next.out.key != k.Local {
		out, err := newSRTPOut(k.Local)
		if err != nil {
			return err
		}
		next.out = out
	}
	e.crypto.Store(next)
	return nil
}

// SRTPActive reports whether the endpoint encrypts and decrypts.
func (e *Endpoint) SRTPActive() bool { return e.crypto.Load().in != nil }

// decrypt authenticates and decrypts pkt in place and returns the plain
// packet, or false for a forged, replayed or malformed one.
func (in *srtpIn) decrypt(pkt []byte, isRTCP bool) ([]byte, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []byte
	var err error
	if isRTCP {
		out, err = in.rtcp.DecryptRTCP(pkt, pkt, &in.rch)
	} else {
		out, err = in.rtp.DecryptRTP(pkt, pkt, &in.rh)
	}
	return out, err == nil
}

// encryptInPlace encrypts pkt, whose buffer has room for the tag (and the
// SRTCP index), and returns the protected packet.
func (o *srtpOut) encryptInPlace(pkt []byte, isRTCP bool) ([]byte, bool) {
	var out []byte
	var err error
	if isRTCP {
		out, err = o.rtcp.EncryptRTCP(pkt, pkt, &o.rch)
	} else {
		out, err = o.rtp.EncryptRTP(pkt, pkt, &o.rh)
	}
	return out, err == nil
}
