package sip

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/sip/internal/testclock"
)

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
			clk := testclock.New(time.Unix(1_800_000_000, 0))
			g := newRegistrar(clk.Now, 3600, "n1")
			for _, st := range tt.steps(t) {
				clk.Advance(st.advance)
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

// TestApplyToAcrossNodes: a REGISTER is applied to the bindings of every
// node, and what it adds or replaces is held by the node that received it.
func TestApplyToAcrossNodes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	phone := func(contact, node, callID string, cseq uint32) Binding {
		return Binding{User: "1001", Contact: uri(t, contact), Node: node, CallID: callID, CSeq: cseq, Expires: now.Add(time.Minute)}
	}
	onB := phone("sip:1001@127.0.0.1:5061", "b", "x", 1)
	tests := []struct {
		name string
		cur  []Binding
		reg  registration
		want []string // contact@node
	}{
		{"a new phone on a keeps b's", []Binding{onB},
			registration{callID: "y", cseq: 1, contacts: []contactExpiry{{uri(t, "sip:1001@127.0.0.1:5062"), 60}}},
			[]string{"sip:1001@127.0.0.1:5061@b", "sip:1001@127.0.0.1:5062@a"}},
		{"the phone moved from b to a", []Binding{onB},
			registration{callID: "y", cseq: 1, contacts: []contactExpiry{{uri(t, "sip:1001@127.0.0.1:5061"), 60}}},
			[]string{"sip:1001@127.0.0.1:5061@a"}},
		{"a reordered REGISTER changes nothing", []Binding{onB},
			registration{callID: "x", cseq: 1, contacts: []contactExpiry{{uri(t, "sip:1001@127.0.0.1:5061"), 0}}},
			[]string{"sip:1001@127.0.0.1:5061@b"}},
		{"a wildcard removes every node's", []Binding{onB, phone("sip:1001@127.0.0.1:5062", "a", "y", 1)},
			registration{callID: "y", cseq: 2, wildcard: true}, nil},
		{"an expired binding is dropped", []Binding{{User: "1001", Contact: uri(t, "sip:1001@127.0.0.1:5063"), Node: "b", Expires: now}},
			registration{callID: "z", cseq: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.reg.user = "1001"
			got := applyTo(tt.cur, tt.reg, now, "a")
			var names []string
			for _, b := range got {
				names = append(names, b.Contact.String()+"@"+b.Node)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("bindings %v, want %v", names, tt.want)
			}
			if len(tt.cur) > 0 && tt.cur[0].Node != "b" {
				t.Error("applyTo changed its input")
			}
		})
	}
}

func TestWithOwn(t *testing.T) {
	a1 := Binding{User: "u", Contact: uri(t, "sip:u@127.0.0.1:1"), Node: "a"}
	a2 := Binding{User: "u", Contact: uri(t, "sip:u@127.0.0.1:2")}
	b1 := Binding{User: "u", Contact: uri(t, "sip:u@127.0.0.1:3"), Node: "b"}
	got := withOwn([]Binding{a1, b1}, []Binding{a2}, "a")
	if len(got) != 2 || got[0].Node != "b" || contactKey(got[1].Contact) != contactKey(a2.Contact) || got[1].Node != "a" {
		t.Errorf("withOwn = %+v: want b's binding, then the local one held by a", got)
	}
	if own := own(got, "a"); len(own) != 1 || own[0].Node != "a" {
		t.Errorf("own = %+v", own)
	}
}

// TestRestoredBindings: bindings loaded at start are marked, keep the mark
// through another phone's REGISTER, lose it when their own phone
// registers again, and a restored TCP binding is reached at its Contact.
func TestRestoredBindings(t *testing.T) {
	clk := testclock.New(time.Unix(1_800_000_000, 0))
	g := newRegistrar(clk.Now, 3600, "a")
	udp := Binding{User: "1001", Contact: uri(t, "sip:1001@127.0.0.1:5061"), Source: "127.0.0.1:5061", Transport: "UDP",
		Expires: clk.Now().Add(time.Minute), CallID: "u", CSeq: 1, Node: "a"}
	tcp := Binding{User: "1001", Contact: uri(t, "sip:1001@127.0.0.1:5062;transport=tcp"), Source: "127.0.0.1:40000", Transport: "TCP",
		Expires: clk.Now().Add(time.Minute), CallID: "t", CSeq: 1, Node: "a"}
	if n := g.load([]Binding{udp, tcp}); n != 2 {
		t.Fatalf("loaded %d", n)
	}
	dests := func() []string {
		var out []string
		for _, b := range g.Lookup("1001") {
			out = append(out, b.dest()+" "+strconv.FormatBool(b.Restored))
		}
		return out
	}
	if got, want := dests(), []string{"127.0.0.1:5061 true", "127.0.0.1:5062 true"}; !slices.Equal(got, want) {
		t.Errorf("after load: %v, want %v", got, want)
	}
	fresh := tcp
	fresh.CSeq, fresh.Source = 2, "127.0.0.1:40001"
	g.replace("1001", []Binding{udp, fresh})
	if got, want := dests(), []string{"127.0.0.1:5061 true", "127.0.0.1:40001 false"}; !slices.Equal(got, want) {
		t.Errorf("after the TCP phone registered again: %v, want %v", got, want)
	}
	if n := g.load([]Binding{udp}); n != 0 {
		t.Errorf("load replaced %d bindings of a user registered meanwhile", n)
	}
}
