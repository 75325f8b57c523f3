package sip

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestParseReplaces(t *testing.T) {
	tests := []struct {
		in   string
		want replaces
		err  bool
	}{
		{in: "425928@bobster.example.org;to-tag=7743;from-tag=6472",
			want: replaces{callID: "425928@bobster.example.org", toTag: "7743", fromTag: "6472"}},
		{in: " abc ; From-Tag = 2 ; TO-TAG=1 ;early-only",
			want: replaces{callID: "abc", toTag: "1", fromTag: "2", earlyOnly: true}},
		{in: `abc;to-tag="1";from-tag=2;other=x`, want: replaces{callID: "abc", toTag: "1", fromTag: "2"}},
		{in: "abc;to-tag=1", err: true},
		{in: ";to-tag=1;from-tag=2", err: true},
		{in: "abc;to-tag=;from-tag=2", err: true},
		{in: "", err: true},
		{in: strings.Repeat("x", maxReplaces) + ";to-tag=1;from-tag=2", err: true},
	}
	for _, tt := range tests {
		got, err := parseReplaces(tt.in)
		if tt.err {
			if !errors.Is(err, errBadReplaces) {
				t.Errorf("parseReplaces(%q) = %+v, %v; want errBadReplaces", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseReplaces(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestReferReplaces reads Replaces from a Refer-To as phones write it,
// escaped inside the URI (RFC 3891 §7), and as some write it unescaped.
func TestReferReplaces(t *testing.T) {
	tests := []struct {
		referTo string
		ok, err bool
		want    replaces
	}{
		{referTo: "<sip:1003@contoso.com?Replaces=425928%40bob%3Bto-tag%3D7743%3Bfrom-tag%3D6472>", ok: true,
			want: replaces{callID: "425928@bob", toTag: "7743", fromTag: "6472"}},
		{referTo: "<sip:park@contoso.com?replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2&Require=replaces>", ok: true,
			want: replaces{callID: "a", toTag: "1", fromTag: "2"}},
		{referTo: "<sip:1003@contoso.com>"},
		{referTo: "<sip:1003@contoso.com?Replaces=a%3Bto-tag%3D1>", ok: true, err: true},
		{referTo: "<sip:1003@contoso.com?Replaces=a%zz>", ok: true, err: true},
	}
	for _, tt := range tests {
		var u sip.Uri
		params := sip.NewParams()
		if _, err := sip.ParseAddressValue(tt.referTo, &u, &params); err != nil {
			t.Fatalf("%s: %v", tt.referTo, err)
		}
		got, ok, err := referReplaces(u)
		if ok != tt.ok || (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("referReplaces(%s) = %+v, %v, %v; want %+v, %v, error %v", tt.referTo, got, ok, err, tt.want, tt.ok, tt.err)
		}
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		method  sip.RequestMethod
		require []string
		want    []string
	}{
		{sip.INVITE, nil, nil},
		{sip.INVITE, []string{"replaces"}, nil},
		{sip.INVITE, []string{"Replaces, 100rel"}, []string{"100rel"}},
		{sip.INVITE, []string{"timer", "replaces"}, []string{"timer"}},
		{sip.REFER, []string{"replaces"}, []string{"replaces"}},
		{sip.INVITE, []string{strings.Repeat("x,", 20)}, strings.Split(strings.Repeat("x,", 8), ",")[:8]},
	}
	for _, tt := range tests {
		req := sip.NewRequest(tt.method, sip.Uri{Scheme: "sip", User: "1002", Host: "contoso.com"})
		for _, r := range tt.require {
			req.AppendHeader(sip.NewHeader("Require", r))
		}
		if got := unsupported(req); !slices.Equal(got, tt.want) {
			t.Errorf("%s with Require %q: unsupported %q, want %q", tt.method, tt.require, got, tt.want)
		}
	}
}
