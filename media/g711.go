package media

import "math/bits"

// G.711 encoders for 16-bit linear samples. Music on hold is encoded once at
// start-up, so these favour being plainly right over speed. They follow the
// ITU-T reference (G.191 software tools, g711.c) bit for bit: a negative
// sample is quantised by its one's complement, so that the asymmetric 16-bit
// range maps onto the symmetric G.711 codes and -1 encodes as negative zero.
// (The widespread Sun g711.c uses the two's complement for µ-law and gives
// different codes near some negative step boundaries.)

// linearToUlaw encodes one sample to µ-law (PCMU, G.711 Table 2a).
func linearToUlaw(s int16) byte {
	v, sign := int(s), byte(0x80)
	if v < 0 {
		v, sign = ^v, 0
	}
	// 14-bit magnitude plus 33, the offset that makes each segment start at
	// a power of two, clipped to the top of the last segment.
	v = min(v>>2+33, 0x1fff)
	exp := bits.Len(uint(v >> 6)) // segment 0..7
	mant := v >> (exp + 1) & 0x0f
	// µ-law sends the code inverted (all bits but the sign).
	return sign | ^byte(exp<<4|mant)&0x7f
}

// linearToAlaw encodes one sample to A-law (PCMA, G.711 Table 1a).
func linearToAlaw(s int16) byte {
	v, sign := int(s), byte(0x80)
	if v < 0 {
		v, sign = ^v, 0
	}
	ix := v >> 4 // 12-bit magnitude
	if ix > 15 {
		// Segments 1..7 double in step size; the first two share a step,
		// hence exp-1. The leading one is implied by the segment.
		exp := bits.Len(uint(ix)) - 4
		ix = exp<<4 | ix>>(exp-1)&0x0f
	}
	// A-law sends every even bit inverted.
	return (sign | byte(ix)) ^ 0x55
}

// ULawToLinear and ALawToLinear decode one G.711 code as the ITU-T
// reference does (G.191 ulaw_expand and alaw_expand): the middle of each
// quantisation step. The switch never decodes; tests check with them what
// a phone would hear.
func ULawToLinear(c byte) int16 {
	c = ^c
	exp := int(c>>4) & 7
	mant := int(c & 0x0f)
	v := (2*mant+33)<<(exp+2) - 132
	if c&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// ALawToLinear decodes one A-law code; see ULawToLinear.
func ALawToLinear(c byte) int16 {
	c ^= 0x55
	exp := int(c>>4) & 7
	mant := int(c & 0x0f)
	if exp > 0 {
		mant += 16 // the implied leading one
	}
	v := mant<<4 + 8
	if exp > 1 {
		v <<= exp - 1
	}
	if c&0x80 == 0 {
		return int16(-v)
	}
	return int16(v)
}
