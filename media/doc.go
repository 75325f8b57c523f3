// Package media anchors the RTP of every call on the switch: each call leg
// gets an Endpoint (an RTP/RTCP socket pair from a PortPool) whose address is
// written into that leg's SDP, and Bridge relays packets between two legs
// without transcoding. The SDP helpers parse what a leg offers and rewrite it
// so that the other leg sends its media to the switch. A leg that negotiates
// SRTP (SDES) is decrypted and encrypted again at its endpoint.
// Relaying runs on a few pollers per pool (epoll, so the package is for
// Linux), not on a goroutine per socket: a call costs no goroutine and no
// read buffer of its own.
// MusicOnHold plays one looped WAV, encoded once to G.711, to every parked
// caller, and an Announcer plays Prompts (WAVs encoded the same way) once
// through; each runs all its listeners off one 20 ms clock.
//
// An endpoint can watch the RFC 4733 telephone-events its remote sends for
// a feature code (WatchDigits, DigitMatcher): while the digits keyed so far
// are the start of the code, their packets are withheld from the peer; a
// full code is reported and never reaches the peer; a sequence that breaks
// (another digit, or DigitTimeout without one) is passed on, the withheld
// digits regenerated as RFC 4733 packets ahead of what follows. Until
// digits flow this costs one compare of the payload type per packet.
//
// The package imports no other package of the project.
package media
