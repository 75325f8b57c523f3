package siptest

import (
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// StatusError is a final non-2xx response to a request the phone sent.
type StatusError struct {
	Code     int
	Reason   string
	Response *sip.Response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("siptest: %d %s", e.Code, e.Reason)
}

func newStatusError(res *sip.Response) *StatusError {
	return &StatusError{Code: res.StatusCode, Reason: res.Reason, Response: res}
}

// StatusCode returns the SIP status carried by err, or 0 when err is not a
// *StatusError.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

var (
	// ErrClosed is returned once the phone has been closed.
	ErrClosed = errors.New("siptest: phone closed")
	// ErrCallEnded is returned by operations on a call whose dialog is over.
	ErrCallEnded = errors.New("siptest: call ended")
	// ErrNotEstablished is returned by in-dialog operations before the call
	// is answered.
	ErrNotEstablished = errors.New("siptest: call not established")
	// ErrCanceled is returned by Incoming.Answer when the caller cancelled
	// the INVITE first.
	ErrCanceled = errors.New("siptest: INVITE cancelled by the caller")
	// ErrNoRemoteMedia is returned when the far end's SDP gives no address
	// RTP can be sent to (port 0 or an unspecified address).
	ErrNoRemoteMedia = errors.New("siptest: no usable remote media address")

	errAnsweredWhileCanceling = errors.New("siptest: call answered while cancelling; hung up")
)

var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 183: "Session Progress",
	200: "OK", 202: "Accepted",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 407: "Proxy Authentication Required",
	408: "Request Timeout", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 486: "Busy Here",
	487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
	500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline",
}

func reasonPhrase(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return "Status"
}
