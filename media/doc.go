// Package media anchors the RTP of every call on the switch: each call leg
// gets an Endpoint (an RTP/RTCP socket pair from a PortPool) whose address is
// written into that leg's SDP, and Bridge relays packets between two legs
// without transcoding. The SDP helpers parse what a leg offers and rewrite it
// so that the other leg sends its media to the switch. A leg that negotiates
// SRTP (SDES) is decrypted and encrypted again at its endpoint.
// MusicOnHold plays one looped WAV, encoded once to G.711, to every parked
// caller, and an Announcer plays Prompts (WAVs encoded the same way) once
// through; each runs all its listeners off one 20 ms clock.
//
// The package imports no other package of the project.
package media
