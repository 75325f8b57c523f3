package sip

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// fakeClock is a settable clock for expiry tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func uri(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRegistrarApply(t *testing.T) {
	phone1 := "sip:1001@127.0.0.1:5061"
	phone2 := "sip:1001@127.0.0.1:5062;transport=tcp"
	type step struct {
		name     string
		reg      registration
		advance  time.Duration
		wantLive []string
	}
	tests := []struct {
		name  string
		steps func(t *testing.T) []step
	}{
		{"two contacts, one removed", func(t *testing.T) []step {
			return []step{
				{name: "add 1", reg: registration{callID: "a", cseq: 1, contacts: []contactExpiry{{uri(t, phone1), 60}}}, wantLive: []string{phone1}},
				{name: "add 2", reg: registration{callID: "b", cseq: 1, contacts: []contactExpiry{{uri(t, phone2), 60}}}, wantLive: []string{phone1, phone2}},
				{name: "remove 1", reg: registration{callID: "a", cseq: 2, contacts: []contactExpiry{{uri(t, phone1), 0}}}, wantLive: []string{phone2}},
			}
		}},
		{"expires honoured", func(t *testing.T) []step {
			return []step{
				{name: "add", reg: registration{callID: "a", cseq: 1, contacts: []contactExpiry{{uri(t, phone1), 10}}}, wantLive: []string{phone1}},
				{name: "9s later still there", advance: 9 * time.Second, wantLive: []string{phone1}},
				{name: "10s later gone", advance: time.Second, wantLive: nil},
			}
		}},
		{"refresh extends", func(t *testing.T) []step {
			return []step{
				{name: "add", reg: registration{callID: "a", cseq: 1, contacts: []contactExpiry{{uri(t, phone1), 10}}}, wantLive: []string{phone1}},
				{name: "refresh at 8s", advance: 8 * time.Second, reg: registration{callID: "a", cseq: 2, contacts: []contactExpiry{{uri(t, phone1), 10}}}, wantLive: []string{phone1}},
				{name: "still there at 16s", advance: 8 * time.Second, wantLive: []string{phone1}},
			}
		}},
		{"reordered REGISTER ignored", func(t *testing.T) []step {
			return []step{
				{name: "cseq 5", reg: registration{callID: "a", cseq: 5, contacts: []contactExpiry{{uri(t, phone1), 60}}}, wantLive: []string{phone1}},
				{name: "old cseq 4 unregister ignored", reg: registration{callID: "a", cseq: 4, contacts: []contactExpiry{{uri(t, phone1), 0}}}, wantLive: []string{phone1}},
			}
		}},
		{"wildcard removes all", func(t *testing.T) []step {
			return []step{
				{name: "add 2", reg: registration{callID: "a", cseq: 1, contacts: []contactExpiry{{uri(t, phone1), 60}, {uri(t, phone2), 60}}}, wantLive: []string{phone1, phone2}},
				{name: "star", reg: registration{callID: "a", cseq: 2, wildcard: true}, wantLive: nil},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			g := newRegistrar(clk.now, 3600, "n1")
			for _, st := range tt.steps(t) {
				clk.advance(st.advance)
				if st.reg.callID != "" || st.reg.wildcard {
					st.reg.user = "1001"
					g.apply(st.reg)
				}
				g.expire()
				got := g.Lookup("1001")
				if len(got) != len(st.wantLive) {
					t.Fatalf("%s: %d bindings, want %v", st.name, len(got), st.wantLive)
				}
				for i, b := range got {
					if want := uri(t, st.wantLive[i]); contactKey(b.Contact) != contactKey(want) {
						t.Errorf("%s: binding %d = %s, want %s", st.name, i, b.Contact.String(), st.wantLive[i])
					}
				}
			}
		})
	}
}

func TestStaticBinding(t *testing.T) {
	tests := []struct {
		contact, source, transport string
		ok                         bool
	}{
		{"sip:2000@127.0.0.1:5090", "127.0.0.1:5090", "UDP", true},
		{"<sip:2000@127.0.0.1>", "127.0.0.1:5060", "UDP", true},
		{"sip:2000@[::1]:5070;transport=tcp", "[::1]:5070", "TCP", true},
		{"", "", "", false},
	}
	for _, tt := range tests {
		b, ok := staticBinding(&User{Name: "2000", Contact: tt.contact})
		if ok != tt.ok || b.Source != tt.source || b.Transport != tt.transport {
			t.Errorf("%q: got %+v %v, want source %s transport %s ok %v", tt.contact, b, ok, tt.source, tt.transport, tt.ok)
		}
		if ok && !b.Static {
			t.Errorf("%q: not marked static", tt.contact)
		}
	}
}

func TestMD5Only(t *testing.T) {
	for ua, want := range map[string]bool{
		"baresip v1.0.0 (x86_64/linux)":      true,
		"baresip v3.11.0 (arm64/linux)":      true,
		"baresip v3.12.0 (x86_64/linux)":     false,
		"baresip v4.1.0":                     false,
		"Linphone/5.1.65 (belle-sip/5.1.55)": false,
		"":                                   false,
	} {
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "contoso.com"})
		if ua != "" {
			req.AppendHeader(sip.NewHeader("User-Agent", ua))
		}
		if got := md5Only(req); got != want {
			t.Errorf("md5Only(%q) = %v, want %v", ua, got, want)
		}
	}
}
