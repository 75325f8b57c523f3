package media

import (
	"errors"
	"strings"
	"testing"
)

// sdesOffer is an offer with audio in RTP/SAVP only (SRTP mandatory), key
// "phoneKey" below.
func sdesOffer(proto string, cryptoLines ...string) []byte {
	b := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 7000 " + proto + " 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	for _, c := range cryptoLines {
		b += "a=crypto:" + c + "\r\n"
	}
	return []byte(b + "a=sendrecv\r\n")
}

// bothOffer offers SRTP and, as an alternative stream, plain RTP.
func bothOffer(c string) []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 7000 RTP/SAVP 0\r\na=crypto:" + c + "\r\n" +
		"m=audio 7002 RTP/AVP 0 8\r\n")
}

func TestParseSDES(t *testing.T) {
	phoneKey := mustKey(t)
	line := Crypto{Tag: 1, Key: phoneKey}.Attribute()
	other := "2 AES_256_CM_HMAC_SHA1_80 inline:" + strings.Repeat("A", 64)
	tests := []struct {
		name     string
		body     []byte
		sdes     bool
		err      error
		srtp     bool
		port     uint16
		proto    string
		wantTag  int
		wantAddr string
	}{
		{"SAVP over TLS", sdesOffer("RTP/SAVP", line), true, nil, true, 7000, "RTP/SAVP", 1, ""},
		{"SAVP over UDP", sdesOffer("RTP/SAVP", line), false, ErrSRTPNotAllowed, false, 0, "", 0, ""},
		{"SAVP, only a suite we lack", sdesOffer("RTP/SAVP", other), true, ErrNoCryptoSuite, false, 0, "", 0, ""},
		{"SAVP, ours second", sdesOffer("RTP/SAVP", other, strings.Replace(line, "1 ", "5 ", 1)), true, nil, true, 7000, "RTP/SAVP", 5, ""},
		{"best-effort AVP over TLS", sdesOffer("RTP/AVP", line), true, nil, true, 7000, "RTP/AVP", 1, ""},
		{"best-effort AVP over UDP", sdesOffer("RTP/AVP", line), false, nil, false, 7000, "RTP/AVP", 0, ""},
		{"SAVP and AVP streams over UDP", bothOffer(line), false, nil, false, 7002, "RTP/AVP", 0, ""},
		{"SAVP and AVP streams over TLS", bothOffer(line), true, nil, true, 7000, "RTP/SAVP", 1, ""},
		{"DTLS-SRTP", sdesOffer("UDP/TLS/RTP/SAVP", line), true, ErrNoCryptoSuite, false, 0, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse(tt.body, tt.sdes)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if (d.SRTP != nil) != tt.srtp || d.Addr.Port() != tt.port || d.Proto != tt.proto {
				t.Fatalf("got SRTP %v port %d proto %s", d.SRTP != nil, d.Addr.Port(), d.Proto)
			}
			if d.SRTP != nil && (d.SRTP.Tag != tt.wantTag || d.SRTP.Key != phoneKey) {
				t.Errorf("crypto %+v", d.SRTP)
			}
		})
	}
}

// TestRewriteNeverPassesKeys: whatever the leg written for, the phone's
// a=crypto never appears; an SRTP leg gets the switch's own key.
func TestRewriteNeverPassesKeys(t *testing.T) {
	phoneKey, ourKey := mustKey(t), mustKey(t)
	line := Crypto{Tag: 1, Key: phoneKey}.Attribute()
	phoneInline := strings.Fields(line)[2]
	ours := &Crypto{Tag: 1, Key: ourKey}
	tests := []struct {
		name      string
		body      []byte
		k         Keying
		wantProto string
		wantOurs  bool
		wantPort  []string // m= lines, in order
	}{
		{"SRTP leg to plain leg", sdesOffer("RTP/SAVP", line), Keying{FromSDES: true}, "RTP/AVP", false, []string{"m=audio 30000 RTP/AVP 0 101"}},
		{"SRTP leg to SRTP leg", sdesOffer("RTP/SAVP", line), Keying{FromSDES: true, Crypto: ours}, "RTP/SAVP", true, []string{"m=audio 30000 RTP/SAVP 0 101"}},
		{"best-effort answer", sdesOffer("RTP/AVP", line), Keying{FromSDES: true, Crypto: ours, Proto: "RTP/AVP"}, "RTP/AVP", true, []string{"m=audio 30000 RTP/AVP 0 101"}},
		{"plain leg to SRTP leg", baresipOffer, Keying{Crypto: ours}, "RTP/SAVP", true, []string{"m=audio 30000 RTP/SAVP 0 8 101"}},
		{"UDP offer with both streams", bothOffer(line), Keying{}, "RTP/AVP", false, []string{"m=audio 0 RTP/SAVP 0", "m=audio 30000 RTP/AVP 0 8"}},
		{"UDP best effort", sdesOffer("RTP/AVP", line), Keying{}, "RTP/AVP", false, []string{"m=audio 30000 RTP/AVP 0 101"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := NewSDPWriter(loopback).RewriteKeyed(tt.body, 30000, "", tt.k)
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			if strings.Contains(s, phoneInline) {
				t.Fatalf("the phone's key was passed on:\n%s", s)
			}
			if got := strings.Contains(s, ours.Attribute()); got != tt.wantOurs {
				t.Errorf("our a=crypto present %v, want %v:\n%s", got, tt.wantOurs, s)
			}
			if n := strings.Count(s, "a=crypto:"); n > 1 || (n == 1) != tt.wantOurs {
				t.Errorf("%d a=crypto lines:\n%s", n, s)
			}
			var ms []string
			for _, l := range strings.Split(s, "\r\n") {
				if strings.HasPrefix(l, "m=") {
					ms = append(ms, l)
				}
			}
			if strings.Join(ms, "|") != strings.Join(tt.wantPort, "|") {
				t.Errorf("m= lines %q, want %q", ms, tt.wantPort)
			}
			d, err := Parse(out, tt.wantOurs)
			if err != nil || d.Proto != tt.wantProto || (d.SRTP != nil) != tt.wantOurs {
				t.Errorf("rewritten body parses as %+v, %v", d, err)
			}
		})
	}
}

func TestOfferKeyed(t *testing.T) {
	k := &Crypto{Tag: 1, Key: mustKey(t)}
	out := string(NewSDPWriter(loopback).OfferKeyed(30000, []Format{PCMU}, SendOnly, Keying{Crypto: k}))
	if !strings.Contains(out, "m=audio 30000 RTP/SAVP 0\r\n") || !strings.Contains(out, "a=crypto:"+k.Attribute()+"\r\n") {
		t.Errorf("keyed offer:\n%s", out)
	}
	if plain := string(NewSDPWriter(loopback).Offer(30000, []Format{PCMU}, SendOnly)); strings.Contains(plain, "crypto") || !strings.Contains(plain, "RTP/AVP") {
		t.Errorf("plain offer:\n%s", plain)
	}
}
