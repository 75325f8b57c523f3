package sip

import "github.com/emiago/sipgo/sip"

// Completed transactions on UDP wait T4 (5 s) to absorb retransmissions,
// not 64*T1 (32 s): RFC 3261's Timers D and J and RFC 6026's L and M.
// Each waiting transaction holds its parsed request and last response,
// and a bridged call leaves three of them (the INVITE on each side, the
// BYE it received): at a thousand calls a second the 32-s wait held about
// 240 MB of messages that are seldom read again (BENCHMARKS.md). A copy
// that comes after T4 has followed several lost ones: a BYE is then a new
// request and gets 481, and a final response to an INVITE is dropped, as
// from a Kamailio proxy, whose wait timer is also 5 s. A late copy of an
// answered INVITE, which Timer L is there to absorb, is known by its leg
// instead (dialogStore.retransmitted) and dropped. Retransmission
// intervals (T1, T2) and the give-up timers (B, F, H) keep their RFC
// values.
func init() {
	sip.Timer_D = sip.T4
	sip.Timer_J = sip.T4
	sip.Timer_L = sip.T4
	sip.Timer_M = sip.T4
}
