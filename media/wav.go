package media

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The one WAV layout music on hold and prompts take: what G.711 carries,
// so that the switch never resamples or mixes down (a job for an audio
// editor, done once, not for every call).
const (
	wavFormatPCM        = 1
	wavFormatExtensible = 0xfffe // same samples; the real format is in a GUID
	wavRate             = 8000
	wavChannels         = 1
	wavBits             = 16
)

// EncodeWAV returns samples as a canonical RIFF/WAVE file (a 44-byte header,
// then the data) in the one layout music on hold and prompts take, so that
// what it writes NewMusicOnHold and NewPrompt read.
func EncodeWAV(samples []int16) []byte {
	const blockAlign = wavChannels * wavBits / 8
	data := blockAlign * len(samples)
	b := make([]byte, 44, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], wavFormatPCM)
	binary.LittleEndian.PutUint16(b[22:], wavChannels)
	binary.LittleEndian.PutUint32(b[24:], wavRate)
	binary.LittleEndian.PutUint32(b[28:], wavRate*blockAlign) // bytes per second
	binary.LittleEndian.PutUint16(b[32:], blockAlign)
	binary.LittleEndian.PutUint16(b[34:], wavBits)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	for _, s := range samples {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}

const errWAVFormat = "the file must be 8 kHz mono 16-bit PCM WAV, got %s"

// parseWAV returns the samples of a RIFF/WAVE file holding 8 kHz mono 16-bit
// little-endian PCM. Chunks other than "fmt " and "data" (LIST, fact, cue,
// ...) are skipped, as editors add them freely.
func parseWAV(b []byte) ([]int16, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, errors.New("not a WAV file (no RIFF/WAVE header)")
	}
	var haveFmt bool
	for off := 12; ; {
		if off+8 > len(b) {
			if !haveFmt {
				return nil, errors.New("WAV is truncated: no fmt chunk")
			}
			return nil, errors.New("WAV is truncated: no data chunk")
		}
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:off+8]))
		body := off + 8
		if size > len(b)-body {
			return nil, fmt.Errorf("WAV is truncated: %q chunk says %d bytes, %d left", id, size, len(b)-body)
		}
		chunk := b[body : body+size]
		switch id {
		case "fmt ":
			if err := checkWAVFormat(chunk); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, errors.New("WAV has its data chunk before its fmt chunk")
			}
			return wavSamples(chunk)
		}
		off = body + size + size&1 // chunks are padded to an even length
	}
}

// checkWAVFormat accepts a fmt chunk for 8 kHz mono 16-bit PCM and describes
// anything else in the error, so that an operator knows what to convert.
func checkWAVFormat(c []byte) error {
	if len(c) < 16 {
		return fmt.Errorf("WAV has a %d-byte fmt chunk, want at least 16", len(c))
	}
	format := binary.LittleEndian.Uint16(c[0:2])
	channels := binary.LittleEndian.Uint16(c[2:4])
	rate := binary.LittleEndian.Uint32(c[4:8])
	bitsPerSample := binary.LittleEndian.Uint16(c[14:16])
	// WAVE_FORMAT_EXTENSIBLE names the format in the first two bytes of its
	// sub-format GUID (after cbSize, valid bits and the channel mask).
	if format == wavFormatExtensible && len(c) >= 26 {
		format = binary.LittleEndian.Uint16(c[24:26])
	}
	if format != wavFormatPCM {
		return fmt.Errorf(errWAVFormat, fmt.Sprintf("format %s", wavFormatName(format)))
	}
	if rate != wavRate || channels != wavChannels || bitsPerSample != wavBits {
		return fmt.Errorf(errWAVFormat, fmt.Sprintf("%d Hz %s %d-bit", rate, channelName(channels), bitsPerSample))
	}
	return nil
}

func wavFormatName(f uint16) string {
	switch f {
	case 3:
		return "IEEE float"
	case 6:
		return "A-law"
	case 7:
		return "µ-law"
	case wavFormatExtensible:
		return "extensible without a sub-format"
	}
	return fmt.Sprintf("%d (not PCM)", f)
}

func channelName(n uint16) string {
	switch n {
	case 1:
		return "mono"
	case 2:
		return "stereo"
	}
	return fmt.Sprintf("%d-channel", n)
}

func wavSamples(data []byte) ([]int16, error) {
	if len(data)%2 != 0 {
		return nil, fmt.Errorf("WAV data is %d bytes, not whole 16-bit samples", len(data))
	}
	if len(data) < 2*samplesPerFrame {
		return nil, fmt.Errorf("WAV holds %d samples, less than one 20 ms packet", len(data)/2)
	}
	s := make([]int16, len(data)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	return s, nil
}
