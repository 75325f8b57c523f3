package sip

import "github.com/emiago/sipgo/sip"

// completedWait is how long a completed transaction on UDP stays to absorb
// retransmissions: RFC 3261's Timers D, I, J and K and RFC 6026's L and M,
// 32 s (64*T1) or 5 s (T4) there. Each waiting transaction holds its parsed
// request and last response, and a bridged call leaves several of them
// (the INVITE and the BYE on each side), so the live heap grows with the
// wait times the call rate: at 1,000 calls a second, 32 s held about
// 240 MB and 5 s about 50 MB (BENCHMARKS.md).
//
// Four T1 (2 s) spans a request's first two retransmissions, at T1 and 3*T1
// after it: a copy later than that has followed two lost answers. Then a
// BYE is a new request and gets 481; a retransmitted 2xx is still ACKed,
// by its leg (onUnmatchedResponse); a late copy of an answered INVITE is
// known by its leg (dialogStore.retransmitted) and dropped; a non-2xx
// final response after three lost ACKs goes unanswered and its sender
// gives up at its Timer H. Retransmission intervals (T1, T2) and the
// give-up timers (B, F, H) keep their RFC values.
var completedWait = 4 * sip.T1

func init() {
	w := completedWait
	sip.Timer_D, sip.Timer_I, sip.Timer_J = w, w, w
	sip.Timer_K, sip.Timer_L, sip.Timer_M = w, w, w
}
