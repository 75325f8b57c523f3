package notify

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parkswitch/parkswitch/store"
)

// maxNameRunes bounds a display name or user name in a message: a caller
// from a trunk writes its own From header, so names are not trusted to be
// short or printable.
const maxNameRunes = 64

// Text is the sentence a person reads in a channel for e, such as "Call
// from Alice Reception (1001) parked at 12 by Carol Support". Names are
// cleaned (control characters removed, length bounded) but not escaped for
// any markup; the formats do that.
func Text(e store.Event) string {
	call := "Call from " + caller(e.ParkedParty)
	at := " at " + strconv.Itoa(e.Code)
	switch e.Type {
	case store.EventParked:
		return call + " parked" + at + " by " + person(e.Parker)
	case store.EventRetrieved:
		return call + " picked up" + at + " by " + person(e.Retriever)
	case store.EventRingbackStarted:
		if e.Reason == "fallback" {
			return call + " parked" + at + " was not picked up: ringing " + person(e.To) + " (fallback)"
		}
		return call + " parked" + at + " was not picked up: ringing back " + person(e.To)
	case store.EventRingbackAnswered:
		return call + " parked" + at + " answered on ringback by " + person(e.Retriever)
	case store.EventAbandoned:
		return call + " parked" + at + " was given up: nobody answered the ringback"
	case store.EventParkedHungUp:
		return call + " parked" + at + " hung up before anyone picked it up"
	case store.EventCallStarted:
		return "Call from " + caller(e.From) + " to " + caller(e.To)
	case store.EventCallAnswered:
		return "Call from " + caller(e.From) + " answered by " + person(e.To)
	case store.EventCallEnded:
		s := "Call from " + caller(e.From) + " to " + caller(e.To) + " ended"
		if r := clean(e.Reason); r != "" {
			s += ": " + r
		}
		return s
	}
	return clean(string(e.Type))
}

// Title is the heading of a card for e: what happened, without the names.
func Title(e store.Event) string {
	code := strconv.Itoa(e.Code)
	switch e.Type {
	case store.EventParked:
		return "Parked at " + code
	case store.EventRetrieved:
		return "Picked up from " + code
	case store.EventRingbackStarted:
		return "Ringing back from " + code
	case store.EventRingbackAnswered:
		return "Ringback answered from " + code
	case store.EventAbandoned:
		return "Given up at " + code
	case store.EventParkedHungUp:
		return "Hung up at " + code
	case store.EventCallStarted:
		return "Call started"
	case store.EventCallAnswered:
		return "Call answered"
	case store.EventCallEnded:
		return "Call ended"
	}
	return clean(string(e.Type))
}

// caller names a calling party with its number: "Alice Reception (1001)",
// or one of them when the other is unknown.
func caller(p store.Party) string {
	name, user := clean(p.Display), clean(p.User)
	switch {
	case name != "" && user != "" && name != user:
		return name + " (" + user + ")"
	case name != "":
		return name
	case user != "":
		return user
	}
	return "an unknown caller"
}

// person names a user by display name, else by user name.
func person(p store.Party) string {
	if name := clean(p.Display); name != "" {
		return name
	}
	if user := clean(p.User); user != "" {
		return user
	}
	return "someone"
}

// clean makes s fit for one line of a message: control characters (line
// breaks) become spaces, runs of blanks one space, formatting characters
// (bidirectional overrides, zero-width ones) go, and it is cut at
// maxNameRunes with an ellipsis.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	n, space := 0, false
	for _, r := range strings.TrimSpace(s) {
		if unicode.Is(unicode.Cf, r) {
			continue // zero width: nothing to show in its place
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			space = true
			continue
		}
		if n == maxNameRunes {
			b.WriteRune('…')
			break
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return b.String()
}
