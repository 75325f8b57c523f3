package policy

import (
	"errors"
	"strings"
	"testing"
)

func named(id string, start, end int) Policy {
	p := Default(id)
	p.AllowCallPark = true
	p.PickupRangeStart, p.PickupRangeEnd = start, end
	return p
}

func TestResolve(t *testing.T) {
	set, err := NewSet(
		[]Policy{named("Sales", 500, 1500), named("Support", 100, 199), named("Exec", 10, 19)},
		[]UserGrant{{User: "ken.myer@contoso.com", Policy: "exec"}},
		[]GroupGrant{
			{Group: "sales-floor", Policy: "Sales", Rank: 2},
			{Group: "Helpdesk", Policy: "SUPPORT", Rank: 1},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		user   string
		groups []string
		want   string
	}{
		{"no grant", "alice@contoso.com", nil, GlobalIdentity},
		{"unknown group", "alice@contoso.com", []string{"nobody"}, GlobalIdentity},
		{"one group", "alice@contoso.com", []string{"sales-floor"}, "Sales"},
		{"lowest rank wins", "alice@contoso.com", []string{"sales-floor", "helpdesk"}, "Support"},
		{"lowest rank wins whatever the order", "alice@contoso.com", []string{"HELPDESK", "sales-floor"}, "Support"},
		{"user grant wins over groups", "ken.myer@contoso.com", []string{"helpdesk"}, "Exec"},
		{"user id ignores case", "Ken.Myer@CONTOSO.com", nil, "Exec"},
		{"group ignores case", "bob@contoso.com", []string{"Sales-Floor"}, "Sales"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := set.Resolve(tt.user, tt.groups); got.Identity != tt.want {
				t.Errorf("Resolve(%q, %v) = %s, want %s", tt.user, tt.groups, got.Identity, tt.want)
			}
		})
	}
}

func TestNilSet(t *testing.T) {
	var s *Set
	if got := s.Resolve("a", []string{"b"}); got != Default(GlobalIdentity) {
		t.Errorf("nil Resolve = %+v", got)
	}
	if _, ok := s.Lookup("global"); !ok {
		t.Error("nil Lookup(global) not found")
	}
	if len(s.Policies()) != 1 || s.UserGrants() != nil || s.GroupGrants() != nil {
		t.Error("nil Set is not just Global")
	}
}

func TestGlobal(t *testing.T) {
	tests := []struct {
		name     string
		policies []Policy
		wantIDs  []string
		global   Policy
	}{
		{"synthesized when absent, first", []Policy{named("A", 10, 20)}, []string{"Global", "A"}, Default(GlobalIdentity)},
		{"synthesized for an empty set", nil, []string{"Global"}, Default(GlobalIdentity)},
		{"kept in file order when present", []Policy{named("A", 10, 20), named("Global", 30, 40)}, []string{"A", "Global"}, named("Global", 30, 40)},
		{"spelling normalized", []Policy{named("GLOBAL", 30, 40)}, []string{"Global"}, named("Global", 30, 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := NewSet(tt.policies, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range set.Policies() {
				ids = append(ids, p.Identity)
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") {
				t.Errorf("Policies() = %v, want %v", ids, tt.wantIDs)
			}
			if got, ok := set.Lookup("gLoBaL"); !ok || got != tt.global {
				t.Errorf("Lookup(gLoBaL) = %+v, %v; want %+v", got, ok, tt.global)
			}
			if got := set.Resolve("x", nil); got != tt.global {
				t.Errorf("Resolve = %+v, want %+v", got, tt.global)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	set, err := NewSet([]Policy{named("SalesPolicy", 500, 1500)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"SalesPolicy": true, "salespolicy": true, "SALESPOLICY": true, "Sales": false, "": false} {
		if _, ok := set.Lookup(id); ok != want {
			t.Errorf("Lookup(%q) found = %v, want %v", id, ok, want)
		}
	}
}

func TestNewSetProblems(t *testing.T) {
	sales := named("Sales", 500, 1500)
	tests := []struct {
		name     string
		policies []Policy
		users    []UserGrant
		groups   []GroupGrant
		want     []string // substrings, one per problem, in order
	}{
		{
			name:     "duplicate identity ignores case",
			policies: []Policy{sales, named("SALES", 10, 20)},
			want:     []string{`policy "SALES": identity "SALES" is already used by policy "Sales": identities ignore case`},
		},
		{
			name:     "invalid policy",
			policies: []Policy{named("", 10, 10000)},
			want:     []string{"policy #1: identity is empty", "policy #1: pickup_range_end 10000 is out of range"},
		},
		{
			name:  "unknown policy in user grant",
			users: []UserGrant{{User: "ken", Policy: "Nope"}},
			want:  []string{`user grant "ken": policy "Nope" does not exist: use one of Global or add it under policies`},
		},
		{
			name:   "unknown policy in group grant",
			groups: []GroupGrant{{Group: "g", Policy: "Nope", Rank: 1}},
			want:   []string{`group grant "g": policy "Nope" does not exist`},
		},
		{
			name:     "rank tie",
			policies: []Policy{sales},
			groups:   []GroupGrant{{Group: "a", Policy: "Sales", Rank: 1}, {Group: "b", Policy: "Global", Rank: 1}},
			want:     []string{`group grant "b": rank 1 is also used by group "a": rank ties are not allowed`},
		},
		{
			name:   "rank below 1",
			groups: []GroupGrant{{Group: "a", Policy: "Global", Rank: 0}, {Group: "b", Policy: "Global", Rank: -3}},
			want:   []string{"rank 0 is out of range: use 1 or more", "rank -3 is out of range"},
		},
		{
			name:   "group granted twice",
			groups: []GroupGrant{{Group: "staff", Policy: "Global", Rank: 1}, {Group: "STAFF", Policy: "Global", Rank: 2}},
			want:   []string{`group grant "STAFF": group "STAFF" is already granted policy "Global": a group has one grant`},
		},
		{
			name:  "user granted twice",
			users: []UserGrant{{User: "ken@contoso.com", Policy: "Global"}, {User: "KEN@contoso.com", Policy: "Global"}},
			want:  []string{`user "KEN@contoso.com" is already granted policy "Global": a user has one direct grant`},
		},
		{
			name:   "empty names",
			users:  []UserGrant{{User: "", Policy: ""}},
			groups: []GroupGrant{{Group: "", Policy: "Global", Rank: 1}},
			want:   []string{"policy is empty: name one of Global", "user is empty", "group is empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := NewSet(tt.policies, tt.users, tt.groups)
			if set != nil {
				t.Errorf("NewSet returned a Set with an error")
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("NewSet error = %v, want Problems", err)
			}
			if len(ps) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.Contains(ps[i].Msg, want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, ps[i].Msg, want)
				}
			}
		})
	}
}

func TestGrantsAreCopies(t *testing.T) {
	set, err := NewSet(nil, []UserGrant{{User: "a", Policy: "Global"}}, []GroupGrant{{Group: "g", Policy: "Global", Rank: 1}})
	if err != nil {
		t.Fatal(err)
	}
	set.UserGrants()[0].User = "changed"
	set.GroupGrants()[0].Group = "changed"
	set.Policies()[0].Identity = "changed"
	if set.UserGrants()[0].User != "a" || set.GroupGrants()[0].Group != "g" || set.Policies()[0].Identity != "Global" {
		t.Error("a Set changed through a returned slice")
	}
}
