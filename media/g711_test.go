package media

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"
)

func TestG711KnownValues(t *testing.T) {
	for _, tt := range []struct {
		in         int16
		ulaw, alaw byte
	}{
		{0, 0xff, 0xd5},
		{-1, 0x7f, 0x55}, // negative zero
		{3, 0xff, 0xd5},
		{4, 0xfe, 0xd5},
		{-4, 0x7f, 0x55},
		{-5, 0x7e, 0x55},
		{15, 0xfd, 0xd5},
		{16, 0xfd, 0xd4},
		{100, 0xf2, 0xd3},
		{-100, 0x73, 0x53}, // Sun's g711.c: 0x72
		{1000, 0xce, 0xfa},
		{-1000, 0x4e, 0x7a},
		{4095, 0xaf, 0x9a},
		{8000, 0xa0, 0x8a},
		{-8000, 0x20, 0x0a},
		{16384, 0x8f, 0xa5},
		{-16384, 0x0f, 0x3a},
		{32635, 0x80, 0xaa},
		{32767, 0x80, 0xaa},  // clipped to the top code
		{-32768, 0x00, 0x2a}, // and the bottom one
	} {
		if got := linearToUlaw(tt.in); got != tt.ulaw {
			t.Errorf("linearToUlaw(%d) = %#02x, want %#02x", tt.in, got, tt.ulaw)
		}
		if got := linearToAlaw(tt.in); got != tt.alaw {
			t.Errorf("linearToAlaw(%d) = %#02x, want %#02x", tt.in, got, tt.alaw)
		}
	}
}

// TestG711Exhaustive compares every input with codes taken from another
// implementation (Python's audioop, i.e. the Sun g711.c): all of A-law, and
// µ-law for non-negative inputs, where the Sun and ITU-T encoders agree.
// The negative half follows from TestG711Symmetry.
func TestG711Exhaustive(t *testing.T) {
	for _, tt := range []struct {
		name    string
		from    int
		encode  func(int16) byte
		wantSHA string
	}{
		{"µ-law 0..32767", 0, linearToUlaw, "912062bf9c931c7ebc1dc1fd1d74faf0cfefcd47e8408a3ed4d07aa59f0f1c20"},
		{"A-law -32768..32767", math.MinInt16, linearToAlaw, "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			codes := make([]byte, 0, 1<<16)
			for v := tt.from; v <= math.MaxInt16; v++ {
				codes = append(codes, tt.encode(int16(v)))
			}
			sum := sha256.Sum256(codes)
			if got := hex.EncodeToString(sum[:]); got != tt.wantSHA {
				t.Errorf("SHA-256 of the codes = %s, want %s", got, tt.wantSHA)
			}
		})
	}
}

// TestG711Symmetry checks the ITU-T rule for negative inputs: -1-x (the
// one's complement of x) has the code of x with the sign bit cleared.
func TestG711Symmetry(t *testing.T) {
	for _, tt := range []struct {
		name   string
		encode func(int16) byte
	}{
		{"µ-law", linearToUlaw},
		{"A-law", linearToAlaw},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for x := 0; x <= math.MaxInt16; x++ {
				// In both laws the sign bit is set for positive codes.
				pos, neg := tt.encode(int16(x)), tt.encode(int16(-1-x))
				if pos&0x80 == 0 || neg != pos^0x80 {
					t.Fatalf("encode(%d) = %#02x, encode(%d) = %#02x: not mirror images", x, pos, -1-x, neg)
				}
			}
		})
	}
}

// TestG711RoundTrip checks every code decodes to a value that encodes back
// to it, and every input lands within half a step of its decoded value.
func TestG711RoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name   string
		encode func(int16) byte
		decode func(byte) int16
		// step is the quantisation step around a decoded value: the
		// reference's segments, in 16-bit units.
		step func(c byte) int
	}{
		{"µ-law", linearToUlaw, ULawToLinear, func(c byte) int { return 8 << (^c >> 4 & 7) }},
		{"A-law", linearToAlaw, ALawToLinear, func(c byte) int { return 16 << max(int((c^0x55)>>4&7), 1) >> 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for c := range 256 {
				v := tt.decode(byte(c))
				want := byte(c)
				if tt.name == "µ-law" && c == 0x7f {
					want = 0xff // negative zero decodes to 0, which is positive zero
				}
				if got := tt.encode(v); got != want {
					t.Errorf("encode(decode(%#02x) = %d) = %#02x", c, v, got)
				}
			}
			for x := math.MinInt16; x <= math.MaxInt16; x++ {
				c := tt.encode(int16(x))
				err := x - int(tt.decode(c))
				if err < 0 {
					err = -err
				}
				// Half a step, plus one for the one's complement of negative
				// inputs; the clipped ends of the range are further out.
				if limit := tt.step(c)/2 + 1; err > limit && abs(x) < 32124 {
					t.Fatalf("%d encodes to %#02x, decoded %d: off by %d, more than %d", x, c, tt.decode(c), err, limit)
				}
			}
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
