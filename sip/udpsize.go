package sip

import "github.com/emiago/sipgo/sip"

// maxUDPPayload is the largest UDP datagram over IPv4.
const maxUDPPayload = 65507

func init() {
	// sipgo refuses to write a UDP message within 200 bytes of a 1500-byte
	// MTU. That rule (RFC 3261 §18.1.1) is for requests a client could
	// send over TCP instead; a response must go back over the transport
	// the request came on (§18.2.2), so a 407 echoing the long headers of a
	// valid request (RFC 4475 §3.1.1.7) was never sent, nor a large INVITE
	// to a phone that registered over UDP only. Let the IP layer fragment.
	// Set once, before any transport exists: sipgo reads it unguarded.
	sip.UDPMTUSize = maxUDPPayload + 200
}
