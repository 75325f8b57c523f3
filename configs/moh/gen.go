// Moh renders the built-in music on hold, configs/music_on_hold.wav: 24
// seconds of gentle music synthesised from scratch, so that the switch ships
// audio it has every right to. configs/music.go runs it through go generate:
//
//	go generate ./configs/
//
// The piece is a I–vi–IV–V progression in C at 80 beats a minute, played
// twice: a soft pad, a plucked bass on beats one and three, an arpeggio in
// eighth notes and a simple melody. It is rendered circularly: a note that
// rings past the end of the loop is added to its start, and the reverb and
// the low-pass run over the loop until they are in their steady state, so
// the loop has no seam and needs no fade. The output is 8 kHz mono 16-bit
// PCM, the format the switch encodes to G.711, peak-normalised to -12 dBFS,
// which puts its loudness near that of speech on a telephone line.
package main

import (
	"flag"
	"log"
	"math"
	"os"

	"github.com/parkswitch/parkswitch/media"
)

const (
	rate   = 8000
	bpm    = 80
	beat   = 60.0 / bpm
	bar    = 4 * beat
	bars   = 8
	length = bars * bar * rate // samples

	// Harmonics are kept below this, well under the 4 kHz Nyquist
	// frequency, so that nothing aliases back into the band.
	maxPartial = 3600.0
	peakDBFS   = -12.0
)

// A chord is the MIDI notes of one bar: pad voicing, bass root and the four
// tones the arpeggio walks through.
type chord struct {
	pad  [3]int
	bass int
	arp  [4]int
}

var (
	cMajor = chord{pad: [3]int{52, 55, 60}, bass: 48, arp: [4]int{60, 64, 67, 72}}
	aMinor = chord{pad: [3]int{52, 57, 60}, bass: 45, arp: [4]int{57, 60, 64, 69}}
	fMajor = chord{pad: [3]int{53, 57, 60}, bass: 41, arp: [4]int{53, 57, 60, 65}}
	gMajor = chord{pad: [3]int{50, 55, 59}, bass: 43, arp: [4]int{55, 59, 62, 67}}

	progression = []chord{cMajor, aMinor, fMajor, gMajor, cMajor, aMinor, fMajor, gMajor}

	// arpeggio is the order of the chord tones over a bar's eighth notes.
	arpeggio = []int{0, 2, 1, 2, 3, 2, 1, 2}
)

// note is a melody note: MIDI number (0 rests) and length in beats.
type note struct {
	midi  int
	beats float64
}

var melody = []note{
	{76, 2}, {79, 1}, {76, 1}, // C
	{76, 1.5}, {74, 0.5}, {72, 2}, // Am
	{72, 1}, {74, 1}, {77, 1}, {76, 1}, // F
	{74, 3}, {0, 1}, // G
	{79, 2}, {81, 1}, {79, 1}, // C
	{76, 2}, {72, 1}, {76, 1}, // Am
	{77, 1.5}, {76, 0.5}, {74, 1}, {72, 1}, // F
	{74, 2}, {71, 1}, {74, 1}, // G, leading back to the start
}

func main() {
	out := flag.String("o", "configs/music_on_hold.wav", "output file")
	flag.Parse()

	loop := make([]float64, length)
	for b, c := range progression {
		t0 := float64(b) * bar
		for _, m := range c.pad {
			// Two voices detuned by a few cents give the pad its warmth.
			for _, cents := range []float64{-4, 4} {
				add(loop, t0, bar, freq(m)*math.Pow(2, cents/1200), 0.06, padTone, padEnvelope, 0)
			}
		}
		for _, beatNo := range []float64{0, 2} {
			add(loop, t0+beatNo*beat, 2*beat, freq(c.bass), 0.2, bassTone, pluck(0.02, 0.7), 0)
		}
		for i, k := range arpeggio {
			add(loop, t0+float64(i)*beat/2, beat, freq(c.arp[k]), 0.08, bellTone, pluck(0.012, 0.35), 0)
		}
	}
	t := 0.0
	for _, n := range melody {
		if n.midi != 0 {
			add(loop, t, n.beats*beat, freq(n.midi), 0.22, fluteTone, leadEnvelope, 5)
		}
		t += n.beats * beat
	}

	loop = steady(loop, reverb)
	loop = steady(loop, lowPass(3000))
	if err := os.WriteFile(*out, media.EncodeWAV(normalise(loop, peakDBFS)), 0o644); err != nil {
		log.Fatal(err)
	}
}

func freq(midi int) float64 { return 440 * math.Pow(2, float64(midi-69)/12) }

// Timbres: the relative amplitude of each harmonic.
var (
	padTone   = []float64{1, 0.2, 0.11, 0.05, 0.04}
	bassTone  = []float64{1, 0.7, 0.45, 0.25, 0.15, 0.08}
	bellTone  = []float64{1, 0.3, 0.08}
	fluteTone = []float64{1, 0.18, 0.06}
)

// An envelope gives the gain at time t (seconds) of a note held for dur; it
// is zero once the note has died away, at dur plus its release.
type envelope struct {
	gain    func(t, dur float64) float64
	release float64
}

// padEnvelope swells slowly and lingers into the next chord.
var padEnvelope = envelope{gain: func(t, dur float64) float64 {
	return adsr(t, dur, 0.6, 0.5, 0.8, 1.2)
}, release: 1.2}

// leadEnvelope is a soft, singing attack.
var leadEnvelope = envelope{gain: func(t, dur float64) float64 {
	return adsr(t, dur, 0.06, 0.25, 0.7, 0.35)
}, release: 0.35}

// pluck is a short attack and an exponential decay with time constant tau,
// faded out over the release so that it never ends on a click.
func pluck(attack, tau float64) envelope {
	const release = 0.2
	return envelope{gain: func(t, dur float64) float64 {
		g := rise(t/attack) * math.Exp(-t/tau)
		if t > dur {
			g *= 1 - rise((t-dur)/release)
		}
		return g
	}, release: release}
}

// adsr is attack, decay to the sustain level, and release after dur; the
// ramps are raised-cosine so that no corner clicks.
func adsr(t, dur, a, d, s, r float64) float64 {
	var g float64
	switch {
	case t < a:
		g = rise(t / a)
	case t < a+d:
		g = 1 - (1-s)*rise((t-a)/d)
	default:
		g = s
	}
	if t > dur {
		g *= 1 - rise((t-dur)/r)
	}
	return g
}

// rise goes smoothly from 0 to 1 as x goes from 0 to 1.
func rise(x float64) float64 {
	x = math.Max(0, math.Min(1, x))
	return 0.5 - 0.5*math.Cos(math.Pi*x)
}

// add renders one note of frequency f starting at t0 seconds into the loop,
// wrapping round its end. vibrato is its rate in Hz (0 for none); it comes in
// gently after the attack, as a player's does.
func add(loop []float64, t0, dur, f, amp float64, tone []float64, env envelope, vibrato float64) {
	start := int(t0 * rate)
	n := int((dur + env.release) * rate)
	phase := 0.0
	for i := range n {
		t := float64(i) / rate
		fi := f
		if vibrato > 0 {
			fi *= 1 + 0.004*rise((t-0.25)/0.4)*math.Sin(2*math.Pi*vibrato*t)
		}
		phase += 2 * math.Pi * fi / rate
		var v float64
		for k, a := range tone {
			h := float64(k + 1)
			if h*f > maxPartial {
				break
			}
			// Upper harmonics fade faster, as in a real instrument.
			v += a * math.Exp(-t*(h-1)*0.4) * math.Sin(h*phase)
		}
		loop[(start+i)%len(loop)] += amp * env.gain(t, dur) * v
	}
}

// A filter processes samples one at a time, keeping its state.
type filter func(x float64) float64

// steady runs a fresh filter over the loop three times and keeps the last
// pass: by then the tail of the loop has fed into its start, as it will
// when the loop plays round.
func steady(loop []float64, newFilter func() filter) []float64 {
	f := newFilter()
	out := make([]float64, len(loop))
	for range 3 {
		for i, x := range loop {
			out[i] = f(x)
		}
	}
	return out
}

// reverb is a small Schroeder reverb (four combs, two all-passes) mixed in
// lightly: a room around the instruments rather than a hall.
func reverb() filter {
	const wet = 0.18
	combs := []filter{comb(237, 0.72), comb(297, 0.70), comb(331, 0.68), comb(353, 0.66)}
	allpasses := []filter{allpass(43, 0.6), allpass(13, 0.6)}
	return func(x float64) float64 {
		var y float64
		for _, c := range combs {
			y += c(x)
		}
		y /= float64(len(combs))
		for _, a := range allpasses {
			y = a(y)
		}
		return (1-wet)*x + wet*y
	}
}

func comb(delay int, feedback float64) filter {
	buf, i := make([]float64, delay), 0
	var damp float64
	return func(x float64) float64 {
		y := buf[i]
		damp = 0.6*y + 0.4*damp // darker repeats
		buf[i] = x + feedback*damp
		i = (i + 1) % delay
		return y
	}
}

func allpass(delay int, g float64) filter {
	buf, i := make([]float64, delay), 0
	return func(x float64) float64 {
		d := buf[i]
		y := -g*x + d
		buf[i] = x + g*y
		i = (i + 1) % delay
		return y
	}
}

// lowPass is a second-order Butterworth low-pass at fc (RBJ cookbook),
// taking the edge off the upper harmonics.
func lowPass(fc float64) func() filter {
	return func() filter {
		w := 2 * math.Pi * fc / rate
		alpha := math.Sin(w) / math.Sqrt2
		cw := math.Cos(w)
		a0 := 1 + alpha
		b0, b1, b2 := (1-cw)/2/a0, (1-cw)/a0, (1-cw)/2/a0
		a1, a2 := -2*cw/a0, (1-alpha)/a0
		var x1, x2, y1, y2 float64
		return func(x float64) float64 {
			y := b0*x + b1*x1 + b2*x2 - a1*y1 - a2*y2
			x1, x2, y1, y2 = x, x1, y, y1
			return y
		}
	}
}

func normalise(loop []float64, dbfs float64) []int16 {
	var peak float64
	for _, x := range loop {
		peak = math.Max(peak, math.Abs(x))
	}
	gain := math.Pow(10, dbfs/20) * 32767 / peak
	out := make([]int16, len(loop))
	for i, x := range loop {
		out[i] = int16(math.Round(x * gain))
	}
	return out
}
