package policy

import (
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	for _, id := range []string{GlobalIdentity, "SalesPolicy"} {
		got := Default(id)
		want := Policy{Identity: id, AllowCallPark: false, PickupRangeStart: 10, PickupRangeEnd: 99, ParkTimeoutSeconds: 300}
		if got != want {
			t.Errorf("Default(%q) = %+v, want %+v", id, got, want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Default(%q).Validate() = %v", id, err)
		}
		if got.ParkTimeout() != 5*time.Minute {
			t.Errorf("ParkTimeout() = %v", got.ParkTimeout())
		}
	}
}

func TestValidate(t *testing.T) {
	with := func(f func(*Policy)) Policy {
		p := Default("P")
		f(&p)
		return p
	}
	tests := []struct {
		name string
		p    Policy
		want string // substring of the error; "" = valid
	}{
		{"defaults", Default("P"), ""},
		{"empty identity", with(func(p *Policy) { p.Identity = "" }), "identity is empty"},
		{"blank identity", with(func(p *Policy) { p.Identity = "  " }), "identity is empty"},
		{"start 9", with(func(p *Policy) { p.PickupRangeStart = 9 }), "pickup_range_start 9 is out of range: use 10–9999"},
		{"start 10", with(func(p *Policy) { p.PickupRangeStart = 10 }), ""},
		{"start 9998 end 9999", with(func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 9998, 9999 }), ""},
		{"start 9999", with(func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 9999, 9999 }), "pickup_range_end 9999 is out of range: use 10–9999 and more than pickup_range_start (9999)"},
		{"start 10000", with(func(p *Policy) { p.PickupRangeStart = 10000 }), "pickup_range_start 10000 is out of range"},
		{"end 9", with(func(p *Policy) { p.PickupRangeEnd = 9 }), "pickup_range_end 9 is out of range"},
		{"end 10", with(func(p *Policy) { p.PickupRangeEnd = 10 }), "pickup_range_end 10 is out of range"},
		{"end 11", with(func(p *Policy) { p.PickupRangeEnd = 11 }), ""},
		{"end 9999", with(func(p *Policy) { p.PickupRangeEnd = 9999 }), ""},
		{"end 10000", with(func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 500, 10000 }), "pickup_range_end 10000 is out of range: use 10–9999 and more than pickup_range_start (500)"},
		{"start equals end", with(func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 50, 50 }), "pickup_range_end 50 is out of range"},
		{"start above end", with(func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 60, 50 }), "pickup_range_end 50 is out of range"},
		{"timeout 119", with(func(p *Policy) { p.ParkTimeoutSeconds = 119 }), "park_timeout_seconds 119 is out of range: use 120–1800"},
		{"timeout 120", with(func(p *Policy) { p.ParkTimeoutSeconds = 120 }), ""},
		{"timeout 1800", with(func(p *Policy) { p.ParkTimeoutSeconds = 1800 }), ""},
		{"timeout 1801", with(func(p *Policy) { p.ParkTimeoutSeconds = 1801 }), "park_timeout_seconds 1801 is out of range"},
		{"several", with(func(p *Policy) { p.PickupRangeStart, p.ParkTimeoutSeconds = 5, 5 }), "pickup_range_start 5 is out of range: use 10–9999; park_timeout_seconds 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate() = nil, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestInRange(t *testing.T) {
	p := Policy{PickupRangeStart: 500, PickupRangeEnd: 1500}
	for code, want := range map[int]bool{499: false, 500: true, 1000: true, 1500: true, 1501: false} {
		if got := p.InRange(code); got != want {
			t.Errorf("InRange(%d) = %v, want %v", code, got, want)
		}
	}
}
