package sip

import (
	"net/netip"
	"testing"
)

func TestDirectory(t *testing.T) {
	d := NewDirectory([]User{
		{ID: "1001@contoso.com", DisplayName: "Alice"},
		{ID: "Ken.Myer@contoso.com", Extension: "2001"},
	}, []Trunk{
		{Name: "carrier", Address: netip.MustParseAddrPort("192.0.2.10:5060"), OutboundPrefix: "9"},
		{Name: "intl", Address: netip.MustParseAddrPort("192.0.2.11:5060"), OutboundPrefix: "900"},
	})
	dialed := []struct {
		in, want string
	}{
		{"1001", "1001"}, {"ken.myer", "Ken.Myer"}, {"2001", "Ken.Myer"}, {"KEN.MYER", "Ken.Myer"}, {"3000", ""},
	}
	for _, tt := range dialed {
		u, ok := d.Dialed(tt.in)
		if got := ""; ok {
			got = u.Name
			if got != tt.want {
				t.Errorf("Dialed(%q) = %q, want %q", tt.in, got, tt.want)
			}
		} else if tt.want != "" {
			t.Errorf("Dialed(%q) not found, want %q", tt.in, tt.want)
		}
	}
	trunks := []struct {
		dialed, trunk, number string
	}{
		{"94155550100", "carrier", "4155550100"},
		{"900441234", "intl", "441234"},
		{"9", "", ""}, // the prefix alone is not a number
		{"1001", "", ""},
	}
	for _, tt := range trunks {
		tr, number, ok := d.TrunkFor(tt.dialed)
		if !ok {
			if tt.trunk != "" {
				t.Errorf("TrunkFor(%q) not found, want %s", tt.dialed, tt.trunk)
			}
			continue
		}
		if tr.Name != tt.trunk || number != tt.number {
			t.Errorf("TrunkFor(%q) = %s %q, want %s %q", tt.dialed, tr.Name, number, tt.trunk, tt.number)
		}
	}
	if tr, ok := d.TrunkFrom(netip.MustParseAddr("::ffff:192.0.2.10")); !ok || tr.Name != "carrier" {
		t.Errorf("TrunkFrom(v4-mapped) = %v %v", tr, ok)
	}
	if _, ok := d.TrunkFrom(netip.MustParseAddr("192.0.2.99")); ok {
		t.Error("unknown host matched a trunk")
	}
}

func TestBetterFailure(t *testing.T) {
	tests := []struct {
		codes []int
		want  int
	}{
		{[]int{486}, 486},
		{[]int{408, 486}, 486},
		{[]int{486, 408}, 486},
		{[]int{503}, 480},
		{[]int{487, 480}, 480},
		{[]int{603, 486}, 603},
		{[]int{486, 603}, 603},
		{[]int{600}, 486},
		{[]int{404, 480}, 404},
	}
	for _, tt := range tests {
		got := 0
		for _, c := range tt.codes {
			got = betterFailure(got, c)
		}
		if got != tt.want {
			t.Errorf("betterFailure(%v) = %d, want %d", tt.codes, got, tt.want)
		}
	}
}
