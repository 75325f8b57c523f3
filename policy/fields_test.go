package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestFieldErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Policy)
		want map[string]string // field: part of its message
	}{
		{"defaults", func(*Policy) {}, map[string]string{}},
		{"end below start", func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 50, 40 },
			map[string]string{"pickup_range_end": "more than pickup_range_start (50)"}},
		{"end equal to start", func(p *Policy) { p.PickupRangeStart, p.PickupRangeEnd = 50, 50 },
			map[string]string{"pickup_range_end": "pickup_range_end 50 is out of range"}},
		{"start too low, timeout too long", func(p *Policy) { p.PickupRangeStart, p.ParkTimeoutSeconds = 9, 1801 },
			map[string]string{"pickup_range_start": "use 10–9999", "park_timeout_seconds": "use 120–1800"}},
		{"no name", func(p *Policy) { p.Identity = " " }, map[string]string{"identity": "identity is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default("Sales")
			tt.edit(&p)
			got := p.FieldErrors()
			if len(got) != len(tt.want) {
				t.Fatalf("FieldErrors = %v, want fields %v", got, tt.want)
			}
			for f, part := range tt.want {
				if !strings.Contains(got[f], part) {
					t.Errorf("%s: %q, want it to say %q", f, got[f], part)
				}
			}
			if (len(got) == 0) != (p.Validate() == nil) {
				t.Errorf("FieldErrors %v disagrees with Validate %v", got, p.Validate())
			}
		})
	}
}

func TestFieldOf(t *testing.T) {
	doc, err := ParseDocument("policies.yaml", []byte("policies:\n  - identity: Sales\n    allow_call_park: true\nassignments:\n  groups:\n    - {group: a, policy: Sales, rank: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	end := 5
	tests := []struct {
		err  error
		want string
	}{
		{doc.New("sales", Changes{}), "identity"},
		{doc.New("", Changes{}), "identity"},
		{doc.New("Support", Changes{PickupRangeEnd: &end}), "pickup_range_end"},
		{doc.Set("Sales", Changes{PickupRangeEnd: &end}), "pickup_range_end"},
		{doc.GrantGroup("b", "Sales", 1), ""},
		{errors.New("user 1009 is in the pickup range 10–99 of policy Sales"), ""},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Fatalf("an edit that should fail did not (want a %q error)", tt.want)
		}
		if got := FieldOf(tt.err); got != tt.want {
			t.Errorf("FieldOf(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
