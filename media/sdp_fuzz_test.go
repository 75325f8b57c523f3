package media

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sdpSeeds returns the SDP bodies of the repository's test data: the RFC
// 4475 messages and the SIPp scenarios, besides the phones' offers above.
func sdpSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{linphoneOffer, baresipOffer, sippOffer}
	files, _ := filepath.Glob("../testdata/rfc4475/*.dat")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if _, body, ok := bytes.Cut(data, []byte("\r\n\r\n")); ok && bytes.HasPrefix(body, []byte("v=0")) {
			seeds = append(seeds, body)
		}
	}
	scenarios, _ := filepath.Glob("../testdata/sipp/*.xml")
	for _, name := range scenarios {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// SIPp keeps bodies after a blank line inside CDATA, with [keywords].
		for _, part := range bytes.Split(data, []byte("\n\n")) {
			if i := bytes.Index(part, []byte("v=0")); i >= 0 {
				body := part[i:]
				if j := bytes.Index(body, []byte("]]>")); j >= 0 {
					body = body[:j]
				}
				body = bytes.ReplaceAll(body, []byte("[media_ip]"), []byte("192.0.2.1"))
				body = bytes.ReplaceAll(body, []byte("[media_port]"), []byte("6000"))
				body = bytes.ReplaceAll(body, []byte("[media_ip_type]"), []byte("4"))
				seeds = append(seeds, bytes.ReplaceAll(bytes.TrimSpace(body), []byte("\n"), []byte("\r\n")))
			}
		}
	}
	if len(seeds) < 5 {
		f.Fatalf("only %d SDP seeds: the test data moved", len(seeds))
	}
	return seeds
}

// FuzzSDP parses and rewrites arbitrary SDP as the relay does for every
// offer and answer: nothing may panic; an SDP that ParseOffer accepts is
// rewritten (both validate alike), and the rewrite parses again with the
// switch's address, port and the direction asked for.
func FuzzSDP(f *testing.F) {
	for _, s := range sdpSeeds(f) {
		f.Add(s, uint16(30000), uint8(0))
		f.Add(s, uint16(30002), uint8(2))
	}
	dirs := []Direction{"", SendRecv, SendOnly, RecvOnly, Inactive}
	ip := netip.MustParseAddr("203.0.113.5")
	f.Fuzz(func(t *testing.T, body []byte, port uint16, dirIdx uint8) {
		dir := dirs[int(dirIdx)%len(dirs)]
		p := int(port&0xfffe) | 2 // even, never 0
		w := NewSDPWriter(ip)
		d, perr := ParseOffer(body)
		out, rerr := w.Rewrite(body, p, dir)
		if (perr == nil) != (rerr == nil) {
			t.Fatalf("ParseOffer error %v but Rewrite error %v", perr, rerr)
		}
		if rerr != nil {
			return
		}
		again, err := ParseOffer(out)
		if err != nil {
			t.Fatalf("rewritten SDP does not parse: %v\n%s", err, out)
		}
		if again.Addr.Addr() != ip {
			t.Fatalf("rewritten audio address %v, want %v\n%s", again.Addr.Addr(), ip, out)
		}
		if d.Addr.Port() != 0 && int(again.Addr.Port()) != p {
			t.Fatalf("rewritten port %d, want %d\n%s", again.Addr.Port(), p, out)
		}
		if dir != "" && again.Direction != dir {
			t.Fatalf("rewritten direction %q, want %q\n%s", again.Direction, dir, out)
		}
		if len(again.Formats) != len(d.Formats) {
			t.Fatalf("rewrite changed the formats %v -> %v", d.Formats, again.Formats)
		}
		if strings.Contains(string(out), "\na=candidate:") {
			t.Fatalf("ICE candidates survived the rewrite:\n%s", out)
		}
		// An SDP the switch wrote is itself a valid offer to rewrite.
		if _, err := w.Rewrite(out, p, ""); err != nil {
			t.Fatalf("re-rewriting our own SDP: %v", err)
		}
		w.Offer(p, again.Formats, dir)
	})
}
