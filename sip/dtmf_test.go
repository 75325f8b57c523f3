package sip

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/park"
)

func TestInfoDigit(t *testing.T) {
	for _, tt := range []struct {
		ct, body string
		want     byte // 0: not a DTMF digit
	}{
		{"application/dtmf-relay", "Signal=#\r\nDuration=160\r\n", '#'},
		{"application/dtmf-relay", "Signal=7\nDuration=100", '7'},
		{"application/dtmf-relay", "Duration=160\r\nSignal= * \r\n", '*'},
		{"Application/DTMF-Relay; charset=utf-8", "signal=2\r\n", '2'},
		{"application/dtmf-relay", "Signal=11\r\nDuration=160\r\n", '#'},
		{"application/dtmf-relay", "Signal=10\r\n", '*'},
		{"application/dtmf-relay", "Signal=a\r\n", 'A'},
		{"application/dtmf-relay", "Signal=12\r\n", 0},
		{"application/dtmf-relay", "Signal=\r\n", 0},
		{"application/dtmf-relay", "Duration=160\r\n", 0},
		{"application/dtmf", "#", '#'},
		{"application/dtmf", " 5\r\n", '5'},
		{"application/dtmf", "55", 0},
		{"application/media_control+xml", "<media_control/>", 0},
		{"", "Signal=#", 0},
		{"application/dtmf-relay", "Signal=#\r\n" + strings.Repeat("x", maxInfoBody), 0},
	} {
		req := sip.NewRequest(sip.INFO, sip.Uri{Scheme: "sip", User: "a", Host: "b"})
		if tt.ct != "" {
			req.AppendHeader(sip.NewHeader("Content-Type", tt.ct))
		}
		req.SetBody([]byte(tt.body))
		got, ok := infoDigit(req)
		if !ok {
			got = 0
		}
		if got != tt.want {
			t.Errorf("%s %q: digit %q, want %q", tt.ct, tt.body, got, tt.want)
		}
	}
}

func TestDTMFRefusal(t *testing.T) {
	for err, want := range map[error]string{
		errNothingToPark:                       "403 nothing to park",
		errNotAUser:                            "403 not a user",
		errInvitePending:                       "491 re-INVITE in progress",
		errTransferring:                        "491 a transfer is in progress",
		errCallEnded:                           "481 the call ended",
		fmt.Errorf("x: %w", park.ErrRangeFull): "503 " + park.ReasonRangeFull,
		park.ErrNotAllowed:                     "403 " + park.ReasonNotAllowed,
		park.ErrUnavailable:                    "503 " + park.ReasonUnavailable,
		fmt.Errorf("something else"):           "500 park failed",
	} {
		status, reason := dtmfRefusal(err)
		if got := fmt.Sprintf("%d %s", status, reason); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}
