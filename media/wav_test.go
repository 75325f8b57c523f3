package media

import (
	"encoding/binary"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// wavFile builds a RIFF/WAVE file from chunks given as id and body.
func wavFile(chunks ...[2]string) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVE")
	for _, c := range chunks {
		b = append(b, c[0]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c[1])))
		b = append(b, c[1]...)
		if len(c[1])%2 == 1 {
			b = append(b, 0)
		}
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// fmtChunk is a 16-byte fmt chunk.
func fmtChunk(format, channels uint16, rate uint32, bits uint16) [2]string {
	b := binary.LittleEndian.AppendUint16(nil, format)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	block := channels * bits / 8
	b = binary.LittleEndian.AppendUint32(b, rate*uint32(block))
	b = binary.LittleEndian.AppendUint16(b, block)
	b = binary.LittleEndian.AppendUint16(b, bits)
	return [2]string{"fmt ", string(b)}
}

// extensibleFmt is a WAVE_FORMAT_EXTENSIBLE fmt chunk for 8 kHz mono 16-bit
// with the given sub-format.
func extensibleFmt(sub uint16) [2]string {
	c := fmtChunk(wavFormatExtensible, 1, 8000, 16)
	b := []byte(c[1])
	b = binary.LittleEndian.AppendUint16(b, 22) // cbSize
	b = binary.LittleEndian.AppendUint16(b, 16) // valid bits
	b = binary.LittleEndian.AppendUint32(b, 4)  // channel mask: front centre
	b = binary.LittleEndian.AppendUint16(b, sub)
	b = append(b, "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"...)
	return [2]string{"fmt ", string(b)}
}

func dataChunk(samples []int16) [2]string {
	b := make([]byte, 0, 2*len(samples))
	for _, s := range samples {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return [2]string{"data", string(b)}
}

// ramp is n distinct samples, so that a test can tell them apart.
func ramp(n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(i*7 - 5000)
	}
	return s
}

var good = fmtChunk(wavFormatPCM, 1, 8000, 16)

func TestParseWAV(t *testing.T) {
	samples := ramp(400)
	data := dataChunk(samples)
	for _, tt := range []struct {
		name    string
		file    []byte
		wantErr string // empty: the samples are returned
	}{
		{"canonical", wavFile(good, data), ""},
		{"unknown chunks skipped", wavFile([2]string{"JUNK", "odd"}, good, [2]string{"LIST", "INFOISFT\x05\x00\x00\x00test\x00"}, [2]string{"fact", "\x90\x01\x00\x00"}, data), ""},
		{"fmt chunk with cbSize", wavFile([2]string{"fmt ", good[1] + "\x00\x00"}, data), ""},
		{"extensible PCM", wavFile(extensibleFmt(wavFormatPCM), data), ""},
		{"trailing chunk after data", wavFile(good, data, [2]string{"id3 ", "tags"}), ""},

		{"44.1 kHz stereo", wavFile(fmtChunk(wavFormatPCM, 2, 44100, 16), data), "must be 8 kHz mono 16-bit PCM WAV, got 44100 Hz stereo 16-bit"},
		{"16 kHz", wavFile(fmtChunk(wavFormatPCM, 1, 16000, 16), data), "got 16000 Hz mono 16-bit"},
		{"stereo", wavFile(fmtChunk(wavFormatPCM, 2, 8000, 16), data), "got 8000 Hz stereo 16-bit"},
		{"8-bit", wavFile(fmtChunk(wavFormatPCM, 1, 8000, 8), data), "got 8000 Hz mono 8-bit"},
		{"24-bit", wavFile(fmtChunk(wavFormatPCM, 1, 8000, 24), data), "got 8000 Hz mono 24-bit"},
		{"float", wavFile(fmtChunk(3, 1, 8000, 32), data), "got format IEEE float"},
		{"already µ-law", wavFile(fmtChunk(7, 1, 8000, 8), data), "got format µ-law"},
		{"extensible float", wavFile(extensibleFmt(3), data), "got format IEEE float"},
		{"short fmt chunk", wavFile([2]string{"fmt ", good[1][:14]}, data), "14-byte fmt chunk"},

		{"not RIFF", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00 an mp3"), "not a WAV file"},
		{"RIFF but not WAVE", []byte("RIFF\x04\x00\x00\x00AVI "), "not a WAV file"},
		{"empty", nil, "not a WAV file"},
		{"header only", wavFile(), "truncated: no fmt chunk"},
		{"no data chunk", wavFile(good), "truncated: no data chunk"},
		{"data before fmt", wavFile(data, good), "data chunk before its fmt chunk"},
		{"data cut short", wavFile(good, data)[:44+500], `truncated: "data" chunk says 800 bytes, 500 left`},
		{"chunk header cut short", wavFile(good, data)[:40], "truncated: no data chunk"},
		{"odd data length", wavFile(good, [2]string{"data", data[1][:401]}), "401 bytes, not whole 16-bit samples"},
		{"less than a frame", wavFile(good, dataChunk(ramp(159))), "159 samples, less than one 20 ms packet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWAV(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseWAV() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, samples) {
				t.Errorf("parseWAV() returned %d samples, not the %d written", len(got), len(samples))
			}
		})
	}
}

// What EncodeWAV writes is the canonical file parseWAV reads back: the
// same bytes as one built chunk by chunk.
func TestEncodeWAV(t *testing.T) {
	in := ramp(400)
	b := EncodeWAV(in)
	if want := wavFile(good, dataChunk(in)); string(b) != string(want) {
		t.Fatalf("EncodeWAV: % x\nwant % x", b[:44], want[:44])
	}
	out, err := parseWAV(b)
	if err != nil || !slices.Equal(out, in) {
		t.Fatalf("parseWAV(EncodeWAV(s)) = %d samples, %v", len(out), err)
	}
}

// TestBuiltinMusic checks the music the switch ships (configs, generated by
// configs/moh/gen.go): it parses, and it is music, not silence nor a tone.
func TestBuiltinMusic(t *testing.T) {
	b, err := os.ReadFile("../configs/music_on_hold.wav")
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := len(s) / wavRate; d < 20 || d > 30 {
		t.Errorf("length %d s, want 20-30 s", d)
	}
	if _, err := NewMusicOnHold(b); err != nil {
		t.Fatal(err)
	}

	// Loud enough to hear and not clipped: about -12 dBFS at its peak.
	peak := 0.0
	for _, v := range s {
		peak = math.Max(peak, math.Abs(float64(v)))
	}
	if db := dBFS(peak); db < -15 || db > -9 {
		t.Errorf("peak %.1f dBFS, want about -12", db)
	}

	// Every second of it sounds (no gap in the loop), and its pitch
	// moves: the zero-crossing rate of a pure tone would be the same in
	// every window.
	const window = wavRate / 2
	var zcrs []float64
	for i := 0; i+window <= len(s); i += window {
		w := s[i : i+window]
		if db := dBFS(rms(w)); db < -40 {
			t.Errorf("%.1f s: %.1f dBFS RMS, near silence", float64(i)/wavRate, db)
		}
		zcrs = append(zcrs, zeroCrossings(w))
	}
	if lo, hi := slices.Min(zcrs), slices.Max(zcrs); hi < 1.5*lo {
		t.Errorf("zero-crossing rate %.0f-%.0f per window: too uniform for music", lo, hi)
	}
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}

func dBFS(v float64) float64 { return 20 * math.Log10(v/32768) }

func zeroCrossings(s []int16) float64 {
	n := 0
	for i := 1; i < len(s); i++ {
		if (s[i] < 0) != (s[i-1] < 0) {
			n++
		}
	}
	return float64(n)
}
