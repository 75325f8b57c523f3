package sip

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/park"
)

func TestDialogInfo(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	alice := park.Party{User: "1001", Display: "Alice <R&D>", URI: "sip:1001@contoso.com"}
	tests := []struct {
		name    string
		version int
		st      lampState
		dialogs int
		has     []string // literal pieces of the body
	}{
		{"free: no dialog", 0, lampState{}, 0, []string{
			`<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:10@contoso.com">`,
		}},
		{"occupied: one confirmed dialog", 3, lampState{busy: true, since: since, parked: alice}, 1, []string{
			`version="3"`, `<state>confirmed</state>`, `direction="recipient"`,
			`<identity display="Alice &lt;R&amp;D&gt;">sip:1001@contoso.com</identity>`,
		}},
		{"occupied by a party without URI", 1, lampState{busy: true, since: since}, 1, []string{`<state>confirmed</state>`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := dialogInfo(tt.version, "sip:10@contoso.com", tt.st)
			if !strings.HasPrefix(string(body), `<?xml version="1.0" encoding="UTF-8"?>`) {
				t.Errorf("no XML declaration:\n%s", body)
			}
			for _, h := range tt.has {
				if !strings.Contains(string(body), h) {
					t.Errorf("body lacks %s:\n%s", h, body)
				}
			}
			var doc struct {
				XMLName xml.Name
				Version int    `xml:"version,attr"`
				State   string `xml:"state,attr"`
				Dialogs []struct {
					ID    string `xml:"id,attr"`
					State string `xml:"state"`
				} `xml:"dialog"`
			}
			if err := xml.Unmarshal(body, &doc); err != nil {
				t.Fatalf("body does not parse: %v\n%s", err, body)
			}
			if doc.XMLName.Space != "urn:ietf:params:xml:ns:dialog-info" || doc.XMLName.Local != "dialog-info" ||
				doc.Version != tt.version || doc.State != "full" || len(doc.Dialogs) != tt.dialogs {
				t.Errorf("parsed %+v", doc)
			}
			for _, d := range doc.Dialogs {
				if d.ID == "" || d.State != "confirmed" {
					t.Errorf("dialog %+v", d)
				}
			}
		})
	}
	// Successive parks at one code are different dialogs.
	a := dialogInfo(0, "e", lampState{busy: true, since: since})
	b := dialogInfo(0, "e", lampState{busy: true, since: since + int64(time.Second)})
	if string(a) == string(b) {
		t.Error("two parks at a code share a dialog id")
	}
}

func TestAcceptsDialogInfo(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, true},
		{[]string{"application/dialog-info+xml"}, true},
		{[]string{"application/pidf+xml, Application/Dialog-Info+XML;q=0.5"}, true},
		{[]string{"application/pidf+xml", "*/*"}, true},
		{[]string{"application/pidf+xml"}, false},
	}
	for _, tt := range tests {
		req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "10", Host: "contoso.com"})
		for _, v := range tt.accept {
			req.AppendHeader(sip.NewHeader("Accept", v))
		}
		if got := acceptsDialogInfo(req); got != tt.want {
			t.Errorf("Accept %q: %v, want %v", tt.accept, got, tt.want)
		}
	}
}
