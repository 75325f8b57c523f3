package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const specExample = `policies:
  - identity: Global
    allow_call_park: false
  - identity: SalesPolicy
    description: Sales floor
    allow_call_park: true
    pickup_range_start: 500
    pickup_range_end: 1500
    park_timeout_seconds: 600
assignments:
  users:
    - user: ken.myer@contoso.com
      policy: SalesPolicy
  groups:
    - group: factory-floor
      policy: SalesPolicy
      rank: 1
`

func TestParseSpecExample(t *testing.T) {
	set, err := Parse("policies.yaml", []byte(specExample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Policy{
		Default(GlobalIdentity),
		{Identity: "SalesPolicy", Description: "Sales floor", AllowCallPark: true, PickupRangeStart: 500, PickupRangeEnd: 1500, ParkTimeoutSeconds: 600},
	}
	got := set.Policies()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Policies() = %+v, want %+v", got, want)
	}
	if ug := set.UserGrants(); len(ug) != 1 || ug[0] != (UserGrant{User: "ken.myer@contoso.com", Policy: "SalesPolicy", Line: 12}) {
		t.Errorf("UserGrants() = %+v", ug)
	}
	if gg := set.GroupGrants(); len(gg) != 1 || gg[0] != (GroupGrant{Group: "factory-floor", Policy: "SalesPolicy", Rank: 1, Line: 15}) {
		t.Errorf("GroupGrants() = %+v", gg)
	}
	if p := set.Resolve("someone", []string{"factory-floor"}); p.Identity != "SalesPolicy" {
		t.Errorf("Resolve by group = %s", p.Identity)
	}
}

func TestParseDefaultsAndEmpty(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Policy
	}{
		{"empty file", "", []Policy{Default(GlobalIdentity)}},
		{"comments only", "# nothing yet\n", []Policy{Default(GlobalIdentity)}},
		{"null sections", "policies:\nassignments:\n", []Policy{Default(GlobalIdentity)}},
		{"Global synthesized before listed policies", "policies:\n  - identity: A\n", []Policy{Default(GlobalIdentity), Default("A")}},
		{"absent keys take defaults", "policies:\n  - identity: Global\n    description: org\n", []Policy{{Identity: "Global", Description: "org", PickupRangeStart: 10, PickupRangeEnd: 99, ParkTimeoutSeconds: 300}}},
		{"aliases", "policies:\n  - &p {identity: A, allow_call_park: true}\nassignments:\n  groups:\n    - {group: g, policy: A, rank: 1}\n", []Policy{Default(GlobalIdentity), {Identity: "A", AllowCallPark: true, PickupRangeStart: 10, PickupRangeEnd: 99, ParkTimeoutSeconds: 300}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("p.yaml", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			got := set.Policies()
			if len(got) != len(tt.want) {
				t.Fatalf("Policies() = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("policy %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// problem is an expected problem: its line and a part of its message.
type problem struct {
	line int
	msg  string
}

func checkProblems(t *testing.T, err error, file string, want []problem) {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error = %v, want Problems", err)
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if ps[i].File != file || ps[i].Line != w.line || !strings.Contains(ps[i].Msg, w.msg) {
			t.Errorf("problem %d = %q, want %s:%d: …%s…", i, ps[i].Error(), file, w.line, w.msg)
		}
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []problem
	}{
		{
			name: "out of range end, message of the contract",
			data: "policies:\n  - identity: Sales\n    pickup_range_start: 500\n    pickup_range_end: 10000\n",
			want: []problem{{4, "pickup_range_end 10000 is out of range: use 10–9999 and more than pickup_range_start (500)"}},
		},
		{
			name: "defaulted end below a given start points at the policy",
			data: "policies:\n  - identity: Sales\n    pickup_range_start: 500\n",
			want: []problem{{2, "pickup_range_end 99 is out of range"}},
		},
		{
			name: "unknown key with line and suggestion",
			data: "policies:\n  - identity: Sales\n    allow_callpark: true\n",
			want: []problem{{3, `unknown key "allow_callpark" in policy: did you mean allow_call_park? Valid keys: identity, description, allow_call_park`}},
		},
		{
			name: "unknown top-level key",
			data: "policies: []\nassignment: {}\n",
			want: []problem{{2, `unknown key "assignment" in the top level: did you mean assignments?`}},
		},
		{
			name: "unknown key far from any valid one",
			data: "assignments:\n  people: []\n",
			want: []problem{{2, `unknown key "people" in assignments: remove it or use one of users, groups`}},
		},
		{
			name: "wrong types",
			data: "policies:\n  - identity: A\n    allow_call_park: maybe\n    pickup_range_start: ten\n    pickup_range_end: 12.5\n    park_timeout_seconds: \"300\"\n    description: [a]\n",
			want: []problem{
				{3, `allow_call_park must be true or false, not "maybe"`},
				{4, `pickup_range_start must be a whole number, not "ten"`},
				{5, `pickup_range_end must be a whole number, not "12.5"`},
				{6, `park_timeout_seconds must be a number, not the text "300": remove the quotes`},
				{7, "description must be a single value, not a list"},
			},
		},
		{
			name: "null values",
			data: "policies:\n  - identity: A\n    allow_call_park:\n    pickup_range_start: ~\n",
			want: []problem{{3, "allow_call_park has no value: write true or false"}, {4, "pickup_range_start has no value"}},
		},
		{
			name: "structure",
			data: "policies:\n  identity: A\nassignments: [1]\n",
			want: []problem{{2, "policies must be a list"}, {3, "assignments must be a mapping of key: value lines, not a list"}},
		},
		{
			name: "list item that is not a mapping",
			data: "policies:\n  - Sales\n",
			want: []problem{{2, `policy must be a mapping of key: value lines, not "Sales"`}},
		},
		{
			name: "missing required keys",
			data: "policies:\n  - description: x\nassignments:\n  users:\n    - user: ken\n  groups:\n    - group: g\n",
			want: []problem{
				{2, "policy has no identity: add the identity key"},
				{5, "user grant has no policy"},
				{7, "group grant has no policy"},
				{7, "group grant has no rank"},
			},
		},
		{
			name: "repeated key",
			data: "policies:\n  - identity: A\n    identity: B\n",
			want: []problem{{3, "identity is given twice in policy (first at line 2): keep only one"}},
		},
		{
			name: "duplicate identity points at the first",
			data: "policies:\n  - identity: Sales\n  - identity: sales\n",
			want: []problem{{3, `identity "sales" is already used by policy "Sales" (line 2): identities ignore case`}},
		},
		{
			name: "unknown policy in grants",
			data: "assignments:\n  users:\n    - user: ken\n      policy: Sales\n  groups:\n    - group: g\n      policy: Nope\n      rank: 1\n",
			want: []problem{
				{4, `policy "Sales" does not exist: use one of Global or add it under policies`},
				{7, `policy "Nope" does not exist`},
			},
		},
		{
			name: "rank tie is an error",
			data: "assignments:\n  groups:\n    - group: a\n      policy: Global\n      rank: 1\n    - group: b\n      policy: Global\n      rank: 1\n",
			want: []problem{{8, `rank 1 is also used by group "a" (line 5): rank ties are not allowed`}},
		},
		{
			name: "rank zero and bad rank type",
			data: "assignments:\n  groups:\n    - group: a\n      policy: Global\n      rank: 0\n    - group: b\n      policy: Global\n      rank: first\n",
			want: []problem{{5, "rank 0 is out of range: use 1 or more"}, {8, `rank must be a whole number, not "first"`}},
		},
		{
			name: "group and user granted twice",
			data: "assignments:\n  users:\n    - {user: ken, policy: Global}\n    - {user: KEN, policy: Global}\n  groups:\n    - {group: g, policy: Global, rank: 1}\n    - {group: G, policy: Global, rank: 2}\n",
			want: []problem{
				{4, `user "KEN" is already granted policy "Global" (line 3)`},
				{7, `group "G" is already granted policy "Global" (line 6)`},
			},
		},
		{
			name: "syntax error",
			data: "policies:\n  - identity: [Sales\n",
			want: []problem{{2, "not valid YAML"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("policies.yaml", []byte(tt.data))
			if set != nil {
				t.Error("Parse returned a Set with problems")
			}
			checkProblems(t, err, "policies.yaml", tt.want)
		})
	}
}

// One pass reports every problem, sorted by line, whatever check found it.
func TestParseCollectsAll(t *testing.T) {
	data := `policies:
  - identity: Global
    allow_call_park: yes
  - identity: Sales
    pickup_range_start: 9
    pickup_range_end: 10000
    park_timeout_seconds: 1801
    colour: blue
  - identity: SALES
assignments:
  users:
    - user: ken
      policy: Missing
  groups:
    - group: a
      policy: Sales
      rank: 1
    - group: b
      policy: Sales
      rank: 1
`
	_, err := Parse("configs/policies.yaml", []byte(data))
	checkProblems(t, err, "configs/policies.yaml", []problem{
		{5, "pickup_range_start 9 is out of range"},
		{6, "pickup_range_end 10000 is out of range"},
		{7, "park_timeout_seconds 1801 is out of range"},
		{8, `unknown key "colour"`},
		{9, `identity "SALES" is already used`},
		{13, `policy "Missing" does not exist`},
		{20, "rank 1 is also used"},
	})
	if want := "configs/policies.yaml:6: pickup_range_end 10000 is out of range: use 10–9999 and more than pickup_range_start (9)"; !strings.Contains(err.Error(), want+"\n") {
		t.Errorf("Error() = %q, want a line %q", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policies.yaml")
	if err := os.WriteFile(path, []byte(specExample), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load(valid) = %v", err)
	}
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Msg, "cannot read the policy file") {
		t.Errorf("Load(missing) = %v", err)
	}
}
