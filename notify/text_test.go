package notify

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parkswitch/parkswitch/store"
)

var (
	alice = store.Party{User: "1001", Display: "Alice Reception", URI: "sip:1001@contoso.com"}
	bob   = store.Party{User: "1002", Display: "Bob Sales"}
	carol = store.Party{User: "1003", Display: "Carol Support"}
	dave  = store.Party{User: "1004", Display: "Dave Warehouse"}
)

func parkEvent(t store.EventType) store.Event {
	return store.Event{Type: t, Seq: 7, Node: "pbx1", CallID: "a84b4c76", Policy: "DemoPark", Code: 12, ParkedParty: alice, Parker: carol}
}

func TestText(t *testing.T) {
	with := func(t store.EventType, f func(*store.Event)) store.Event {
		e := parkEvent(t)
		f(&e)
		return e
	}
	tests := []struct {
		name string
		e    store.Event
		want string
	}{
		{"parked", parkEvent(store.EventParked), "Call from Alice Reception (1001) parked at 12 by Carol Support"},
		{"retrieved", with(store.EventRetrieved, func(e *store.Event) { e.Retriever = bob }),
			"Call from Alice Reception (1001) picked up at 12 by Bob Sales"},
		{"ringback to the parker", with(store.EventRingbackStarted, func(e *store.Event) { e.To, e.Reason = carol, "parker" }),
			"Call from Alice Reception (1001) parked at 12 was not picked up: ringing back Carol Support"},
		{"ringback to the fallback", with(store.EventRingbackStarted, func(e *store.Event) { e.To, e.Reason = dave, "fallback" }),
			"Call from Alice Reception (1001) parked at 12 was not picked up: ringing Dave Warehouse (fallback)"},
		{"ringback answered", with(store.EventRingbackAnswered, func(e *store.Event) { e.Retriever = carol }),
			"Call from Alice Reception (1001) parked at 12 answered on ringback by Carol Support"},
		{"abandoned", parkEvent(store.EventAbandoned), "Call from Alice Reception (1001) parked at 12 was given up: nobody answered the ringback"},
		{"hung up", parkEvent(store.EventParkedHungUp), "Call from Alice Reception (1001) parked at 12 hung up before anyone picked it up"},
		{"call started", store.Event{Type: store.EventCallStarted, From: alice, To: store.Party{User: "1002", Display: "Bob Sales"}},
			"Call from Alice Reception (1001) to Bob Sales (1002)"},
		{"call answered", store.Event{Type: store.EventCallAnswered, From: alice, To: bob}, "Call from Alice Reception (1001) answered by Bob Sales"},
		{"call ended", store.Event{Type: store.EventCallEnded, From: alice, To: bob, Reason: "bye from a"},
			"Call from Alice Reception (1001) to Bob Sales (1002) ended: bye from a"},
		{"caller without a display name", with(store.EventParked, func(e *store.Event) { e.ParkedParty = store.Party{User: "+4930123"} }),
			"Call from +4930123 parked at 12 by Carol Support"},
		{"parker without a display name", with(store.EventParked, func(e *store.Event) { e.Parker = store.Party{User: "1003"} }),
			"Call from Alice Reception (1001) parked at 12 by 1003"},
		{"nobody known", with(store.EventParked, func(e *store.Event) { e.ParkedParty, e.Parker = store.Party{}, store.Party{} }),
			"Call from an unknown caller parked at 12 by someone"},
		{"a name with a line break", with(store.EventParked, func(e *store.Event) {
			e.ParkedParty = store.Party{User: "1001", Display: "Alice\r\nParked at 99 by the boss\u202e"}
		}), "Call from Alice Parked at 99 by the boss (1001) parked at 12 by Carol Support"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(tc.e); got != tc.want {
				t.Errorf("Text = %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  Alice   Reception ", "Alice Reception"},
		{"a\tb\nc\x00d", "a b c d"},
		{"\u200bzero\u200dwidth", "zerowidth"},
		{"bad \xff utf-8", "bad \uFFFD utf-8"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := clean(strings.Repeat("é", 1000))
	if n := utf8.RuneCountInString(long); n != maxNameRunes+1 || !strings.HasSuffix(long, "…") {
		t.Errorf("a 1000-rune name is cut to %d runes: %q", n, long)
	}
}
