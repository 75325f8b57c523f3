// Package sip is the signaling half of parkswitch: it binds the SIP
// listeners, runs the registrar and digest authentication, and bridges
// calls as a back-to-back user agent. Every call has an inbound leg (the
// caller's dialog, where the switch is the UAS) and an outbound leg (the
// callee's dialog, where the switch is the UAC); each leg anchors its media
// on a media.Endpoint so that both SDPs point at the switch.
//
// Dialog state (tags, CSeq, remote target, route set) is kept by the switch
// itself per leg rather than by sipgo's dialog helpers, because a B2BUA must
// route in-dialog requests of either side to the other and re-INVITE legs
// on its own (park, retrieve).
//
// Call park is reached three ways, all through one park entry
// (parkOther): a REFER to the park address or to a code, and the DTMF park
// code keyed during a call (dtmf.go), whose digits are withheld from the
// other party while they may still be the code.
package sip
