package sip

import "testing"

// TestMayUseSDES: SDES keys travel in the SDP, so only a TLS hop may carry
// them.
func TestMayUseSDES(t *testing.T) {
	for transport, want := range map[string]bool{
		"UDP": false, "udp": false, "TCP": false, "WS": false, "": false,
		"TLS": true, "tls": true,
	} {
		if got := mayUseSDES(transport); got != want {
			t.Errorf("mayUseSDES(%q) = %v, want %v", transport, got, want)
		}
	}
}
