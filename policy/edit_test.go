package policy

import (
	"errors"
	"math/rand"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// sales is the Teams example: New-CsTeamsCallParkPolicy -Identity SalesPolicy
// -AllowCallPark $true -PickupRangeStart 500 -PickupRangeEnd 1500
// -ParkTimeoutSeconds 600.
var sales = Changes{
	Description:        ptr("Sales floor"),
	AllowCallPark:      ptr(true),
	PickupRangeStart:   ptr(500),
	PickupRangeEnd:     ptr(1500),
	ParkTimeoutSeconds: ptr(600),
}

const salesItem = `  - identity: SalesPolicy
    description: Sales floor
    allow_call_park: true
    pickup_range_start: 500
    pickup_range_end: 1500
    park_timeout_seconds: 600
`

// commented is a policy file as an operator writes it: comments everywhere,
// blank lines between entries, a trailing comment on values.
const commented = `# Call park policies.

policies:
  # The org-wide default.
  - identity: Global
    allow_call_park: false   # as in Teams

  # The front desk.
  - identity: Reception
    allow_call_park: true
    pickup_range_end: 49   # codes 10-49

# Grants.
assignments:
  users:
    - user: adele@contoso.com   # lead
      policy: Reception
  groups:
    - group: front-desk
      policy: Reception
      rank: 1
`

func TestDocumentEdits(t *testing.T) {
	tests := []struct {
		name string
		in   string
		edit func(d *Document) error
		want string
	}{
		{
			name: "new appends in the style of the list, blank line included",
			in:   commented,
			edit: func(d *Document) error { return d.New("SalesPolicy", sales) },
			want: strings.Replace(commented, "    pickup_range_end: 49   # codes 10-49\n",
				"    pickup_range_end: 49   # codes 10-49\n\n"+salesItem, 1),
		},
		{
			name: "new writes only the identity and the given keys",
			in:   "policies:\n  - identity: Global\n",
			edit: func(d *Document) error { return d.New("Lobby", Changes{AllowCallPark: ptr(true)}) },
			want: "policies:\n  - identity: Global\n  - identity: Lobby\n    allow_call_park: true\n",
		},
		{
			name: "new into an empty file",
			in:   "",
			edit: func(d *Document) error { return d.New("SalesPolicy", sales) },
			want: "policies:\n" + salesItem,
		},
		{
			name: "new into a file of comments",
			in:   "# Policies go here.\n",
			edit: func(d *Document) error { return d.New("A", Changes{}) },
			want: "# Policies go here.\n\npolicies:\n  - identity: A\n",
		},
		{
			name: "new before assignments when policies is missing",
			in:   "# head\n\nassignments:\n  users: []\n",
			edit: func(d *Document) error { return d.New("A", Changes{}) },
			want: "# head\n\npolicies:\n  - identity: A\nassignments:\n  users: []\n",
		},
		{
			name: "new into policies: []",
			in:   "policies: []   # none yet\nassignments:\n",
			edit: func(d *Document) error { return d.New("A", Changes{}) },
			want: "policies:   # none yet\n  - identity: A\nassignments:\n",
		},
		{
			name: "new into a null policies, unindented lists",
			in:   "policies:\nassignments:\n  groups:\n  - group: g\n    policy: Global\n    rank: 1\n",
			edit: func(d *Document) error { return d.New("A", Changes{}) },
			want: "policies:\n- identity: A\nassignments:\n  groups:\n  - group: g\n    policy: Global\n    rank: 1\n",
		},
		{
			name: "new into a flow list",
			in:   "policies: [{identity: Global}]  # flow\n",
			edit: func(d *Document) error { return d.New("B", Changes{Description: ptr("x, y")}) },
			want: "policies: [{identity: Global}, {identity: B, description: 'x, y'}]  # flow\n",
		},
		{
			name: "new after flow items",
			in:   "policies:\n  - {identity: Global}\n",
			edit: func(d *Document) error { return d.New("B", Changes{AllowCallPark: ptr(true)}) },
			want: "policies:\n  - {identity: Global}\n  - {identity: B, allow_call_park: true}\n",
		},
		{
			name: "new at the end of a file without a final newline",
			in:   "policies:\n  - identity: Global",
			edit: func(d *Document) error { return d.New("B", Changes{}) },
			want: "policies:\n  - identity: Global\n  - identity: B",
		},
		{
			name: "new keeps CRLF line ends",
			in:   "policies:\r\n  - identity: Global\r\n",
			edit: func(d *Document) error { return d.New("B", Changes{AllowCallPark: ptr(true)}) },
			want: "policies:\r\n  - identity: Global\r\n  - identity: B\r\n    allow_call_park: true\r\n",
		},
		{
			name: "new after a byte order mark",
			in:   "\ufeffpolicies: []\nassignments:\n",
			edit: func(d *Document) error { return d.New("A", Changes{}) },
			want: "\ufeffpolicies:\n  - identity: A\nassignments:\n",
		},
		{
			name: "new quotes what needs quoting",
			in:   "",
			edit: func(d *Document) error { return d.New("123", Changes{Description: ptr("two\nlines")}) },
			want: "policies:\n  - identity: \"123\"\n    description: \"two\\nlines\"\n",
		},
		{
			name: "set rewrites values in place and adds keys in order",
			in:   commented,
			edit: func(d *Document) error {
				return d.Set("reception", Changes{PickupRangeEnd: ptr(59), Description: ptr("Front desk"), ParkTimeoutSeconds: ptr(600)})
			},
			want: strings.Replace(commented, `  - identity: Reception
    allow_call_park: true
    pickup_range_end: 49   # codes 10-49
`, `  - identity: Reception
    description: Front desk
    allow_call_park: true
    pickup_range_end: 59   # codes 10-49
    park_timeout_seconds: 600
`, 1),
		},
		{
			name: "set keeps the quoting of the old value",
			in:   "policies:\n  - identity: A\n    description: \"old\"\n  - identity: B\n    description: 'old'\n",
			edit: func(d *Document) error {
				if err := d.Set("A", Changes{Description: ptr("new")}); err != nil {
					return err
				}
				return d.Set("B", Changes{Description: ptr("it's")})
			},
			want: "policies:\n  - identity: A\n    description: \"new\"\n  - identity: B\n    description: 'it''s'\n",
		},
		{
			name: "set replaces empty, null and multi-line values",
			in:   "policies:\n  - identity: A\n    description:\n  - identity: B\n    description: ~\n  - identity: C\n    description: |\n      two\n      lines\n    allow_call_park: true\n  - identity: D\n    description: plain\n      continued\n",
			edit: func(d *Document) error {
				for _, id := range []string{"A", "B", "C", "D"} {
					if err := d.Set(id, Changes{Description: ptr("x")}); err != nil {
						return err
					}
				}
				return nil
			},
			want: "policies:\n  - identity: A\n    description: x\n  - identity: B\n    description: x\n  - identity: C\n    description: x\n    allow_call_park: true\n  - identity: D\n    description: x\n",
		},
		{
			name: "set on a flow item rewrites the item",
			in:   "policies:\n  - {identity: A, allow_call_park: true}   # flow\n",
			edit: func(d *Document) error {
				return d.Set("A", Changes{AllowCallPark: ptr(false), PickupRangeStart: ptr(20)})
			},
			want: "policies:\n  - {identity: A, allow_call_park: false, pickup_range_start: 20}   # flow\n",
		},
		{
			name: "flow collections with quotes, brackets and comments",
			in:   "policies: [\n  {identity: \"A]\", description: 'x}'},  # one\n  {identity: B, description: \"say \\\"hi\\\" [ok]\"}\n]\n",
			edit: func(d *Document) error { return d.Set("B", Changes{AllowCallPark: ptr(true)}) },
			want: "policies: [\n  {identity: \"A]\", description: 'x}'},  # one\n  {identity: B, description: \"say \\\"hi\\\" [ok]\", allow_call_park: true}\n]\n",
		},
		{
			name: "apostrophes in plain flow scalars",
			in:   "policies:\n  - {identity: A, description: it's fine}  # Ann's\n  - {identity: B}\n",
			edit: func(d *Document) error { return d.Set("A", Changes{AllowCallPark: ptr(true)}) },
			want: "policies:\n  - {identity: A, description: it's fine, allow_call_park: true}  # Ann's\n  - {identity: B}\n",
		},
		{
			name: "quoted keys",
			in:   "\"policies\": []\n'assignments':\n  \"users\": []\n",
			edit: func(d *Document) error {
				if err := d.New("A", Changes{}); err != nil {
					return err
				}
				return d.GrantUser("ken@contoso.com", "A")
			},
			want: "\"policies\":\n  - identity: A\n'assignments':\n  \"users\":\n    - user: ken@contoso.com\n      policy: A\n",
		},
		{
			name: "set through an alias changes only that entry",
			in:   "policies:\n  - identity: A\n    pickup_range_end: &end 50\n  - identity: B\n    pickup_range_end: *end\n",
			edit: func(d *Document) error { return d.Set("B", Changes{PickupRangeEnd: ptr(60)}) },
			want: "policies:\n  - identity: A\n    pickup_range_end: &end 50\n  - identity: B\n    pickup_range_end: 60\n",
		},
		{
			name: "set on Global absent from the file writes it first",
			in:   "policies:\n  # Sales.\n  - identity: S\n",
			edit: func(d *Document) error { return d.Set("global", Changes{AllowCallPark: ptr(true)}) },
			want: "policies:\n  - identity: Global\n    allow_call_park: true\n  # Sales.\n  - identity: S\n",
		},
		{
			name: "remove takes the comment above and one blank line",
			in:   commented + "\n",
			edit: func(d *Document) error {
				if err := d.RevokeUser("ADELE@contoso.com"); err != nil {
					return err
				}
				if err := d.RevokeGroup("front-desk"); err != nil {
					return err
				}
				return d.Remove("Reception")
			},
			want: `# Call park policies.

policies:
  # The org-wide default.
  - identity: Global
    allow_call_park: false   # as in Teams

# Grants.
assignments:
  users: []
  groups: []

`,
		},
		{
			name: "remove between blank-separated items",
			in:   "policies:\n  - identity: A\n\n  # B\n  - identity: B\n\n  - identity: C\n",
			edit: func(d *Document) error { return d.Remove("b") },
			want: "policies:\n  - identity: A\n\n  - identity: C\n",
		},
		{
			name: "remove from a flow list",
			in:   "policies: [{identity: A}, {identity: B}]\n",
			edit: func(d *Document) error { return d.Remove("A") },
			want: "policies: [{identity: B}]\n",
		},
		{
			name: "removing Global resets it",
			in:   commented,
			edit: func(d *Document) error { return d.Remove("Global") },
			want: strings.Replace(commented, "    allow_call_park: false   # as in Teams\n", "", 1),
		},
		{
			name: "removing Global with identity not first",
			in:   "policies:\n  - allow_call_park: true\n    # note\n    identity: Global\n    park_timeout_seconds: 600\n",
			edit: func(d *Document) error { return d.Remove("Global") },
			want: "policies:\n  - identity: Global\n",
		},
		{
			name: "removing Global in flow style",
			in:   "policies:\n  - {identity: Global, allow_call_park: true}\n",
			edit: func(d *Document) error { return d.Remove("Global") },
			want: "policies:\n  - {identity: Global}\n",
		},
		{
			name: "removing an absent Global changes nothing",
			in:   "policies: []\n",
			edit: func(d *Document) error { return d.Remove("Global") },
			want: "policies: []\n",
		},
		{
			name: "grant to a user replaces the old grant in place",
			in:   commented,
			edit: func(d *Document) error { return d.GrantUser("Adele@contoso.com", "global") },
			want: strings.Replace(commented, "      policy: Reception\n  groups:", "      policy: Global\n  groups:", 1),
		},
		{
			name: "grant creates assignments",
			in:   "policies:\n  - identity: A\n",
			edit: func(d *Document) error { return d.GrantUser("ken@contoso.com", "a") },
			want: "policies:\n  - identity: A\nassignments:\n  users:\n    - user: ken@contoso.com\n      policy: A\n",
		},
		{
			name: "grant creates users before groups",
			in:   "assignments:\n  # groups\n  groups:\n    - group: g\n      policy: Global\n      rank: 1\n",
			edit: func(d *Document) error { return d.GrantUser("ken@contoso.com", "Global") },
			want: "assignments:\n  users:\n    - user: ken@contoso.com\n      policy: Global\n  # groups\n  groups:\n    - group: g\n      policy: Global\n      rank: 1\n",
		},
		{
			name: "grant fills a null assignments",
			in:   "policies: []\nassignments:   # later\n",
			edit: func(d *Document) error { return d.GrantGroup("g", "Global", 3) },
			want: "policies: []\nassignments:   # later\n  groups:\n    - group: g\n      policy: Global\n      rank: 3\n",
		},
		{
			name: "group grant replaces policy and rank",
			in:   commented,
			edit: func(d *Document) error { return d.GrantGroup("Front-Desk", "Global", 5) },
			want: strings.Replace(commented, "      policy: Reception\n      rank: 1\n", "      policy: Global\n      rank: 5\n", 1),
		},
		{
			name: "grant in flow mappings",
			in:   "{policies: [{identity: A}], assignments: {groups: [{group: g, policy: A, rank: 3}]}}  # all flow\n",
			edit: func(d *Document) error { return d.GrantUser("u@x.com", "A") },
			want: "{policies: [{identity: A}], assignments: {users: [{user: u@x.com, policy: A}], groups: [{group: g, policy: A, rank: 3}]}}  # all flow\n",
		},
		{
			name: "group grant in a flow list",
			in:   "assignments:\n  groups: [{group: a, policy: Global, rank: 1}]\n",
			edit: func(d *Document) error { return d.GrantGroup("b", "Global", 2) },
			want: "assignments:\n  groups: [{group: a, policy: Global, rank: 1}, {group: b, policy: Global, rank: 2}]\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDocument("p.yaml", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.edit(d); err != nil {
				t.Fatalf("edit: %v", err)
			}
			if got := string(d.Bytes()); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if _, err := Parse("p.yaml", d.Bytes()); err != nil {
				t.Errorf("result does not parse: %v", err)
			}
		})
	}
}

func TestDocumentRefusals(t *testing.T) {
	tests := []struct {
		name string
		in   string
		edit func(d *Document) error
		want string // part of the error
	}{
		{"start below range", commented, func(d *Document) error { return d.New("X", Changes{PickupRangeStart: ptr(9)}) },
			"pickup_range_start 9 is out of range: use 10–9999"},
		{"end above range", commented, func(d *Document) error {
			return d.New("X", Changes{PickupRangeStart: ptr(500), PickupRangeEnd: ptr(10000)})
		}, "pickup_range_end 10000 is out of range: use 10–9999 and more than pickup_range_start (500)"},
		{"start not below end", commented, func(d *Document) error {
			return d.New("X", Changes{PickupRangeStart: ptr(600), PickupRangeEnd: ptr(600)})
		}, "pickup_range_end 600 is out of range"},
		{"default end below a new start", commented, func(d *Document) error { return d.New("X", Changes{PickupRangeStart: ptr(500)}) },
			"pickup_range_end 99 (the default) is out of range"},
		{"unchanged end below a new start", commented, func(d *Document) error { return d.Set("Reception", Changes{PickupRangeStart: ptr(50)}) },
			"pickup_range_end 49 (unchanged) is out of range"},
		{"timeout too short", commented, func(d *Document) error { return d.New("X", Changes{ParkTimeoutSeconds: ptr(119)}) },
			"park_timeout_seconds 119 is out of range: use 120–1800"},
		{"timeout too long", commented, func(d *Document) error { return d.Set("Global", Changes{ParkTimeoutSeconds: ptr(1801)}) },
			"park_timeout_seconds 1801 is out of range"},
		{"duplicate identity", commented, func(d *Document) error { return d.New("RECEPTION", Changes{}) },
			"policy Reception already exists"},
		{"Global always exists", "", func(d *Document) error { return d.New("global", Changes{}) },
			"policy Global already exists"},
		{"empty identity", commented, func(d *Document) error { return d.New(" ", Changes{}) }, "identity is empty"},
		{"identity with spaces around", commented, func(d *Document) error { return d.New(" Sales", Changes{}) }, "has spaces around it"},
		{"identity with a control character", commented, func(d *Document) error { return d.New("Sa\x00les", Changes{}) }, "control characters"},
		{"empty user", commented, func(d *Document) error { return d.GrantUser("", "Global") }, "user is empty"},
		{"empty group", commented, func(d *Document) error { return d.GrantGroup("", "Global", 4) }, "group is empty"},
		{"no group grant to revoke", commented, func(d *Document) error { return d.RevokeGroup("sales") }, "group sales has no grant"},
		{"anchored flow value", "policies:\n  - {identity: A, description: &d x}\n  - identity: B\n    description: *d\n",
			func(d *Document) error { return d.Set("A", Changes{Description: ptr("y")}) }, "anchor &d"},
		{"unknown policy set", commented, func(d *Document) error { return d.Set("Nope", Changes{AllowCallPark: ptr(true)}) },
			"no policy named Nope: the policies are Global, Reception"},
		{"unknown policy remove", commented, func(d *Document) error { return d.Remove("Nope") }, "no policy named Nope"},
		{"unknown policy grant", commented, func(d *Document) error { return d.GrantUser("a@b.c", "Nope") }, "no policy named Nope"},
		{"rank tie", commented, func(d *Document) error { return d.GrantGroup("sales", "Global", 1) },
			"rank 1 is already used by group front-desk (policy Reception)"},
		{"rank zero", commented, func(d *Document) error { return d.GrantGroup("sales", "Global", 0) }, "rank 0 is out of range"},
		{"still granted", commented, func(d *Document) error { return d.Remove("Reception") },
			"policy Reception is still granted to user adele@contoso.com and group front-desk: remove those grants first"},
		{"no grant to revoke", commented, func(d *Document) error { return d.RevokeUser("ken@contoso.com") }, "has no direct grant"},
		{"anchored value", "policies:\n  - identity: A\n    pickup_range_end: &e 50\n  - identity: B\n    pickup_range_end: *e\n",
			func(d *Document) error { return d.Set("A", Changes{PickupRangeEnd: ptr(60)}) }, "make it by hand"},
		{"invalid file", "policies:\n  - identity: A\n    pickup_range_end: 5\n", nil, "pickup_range_end 5 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDocument("p.yaml", []byte(tt.in))
			if tt.edit == nil {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("ParseDocument of an invalid file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = tt.edit(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if got := string(d.Bytes()); got != tt.in {
				t.Errorf("a refused edit changed the document:\n%s", got)
			}
		})
	}
}

func TestDocumentGrantedError(t *testing.T) {
	d, err := ParseDocument("p.yaml", []byte(commented))
	if err != nil {
		t.Fatal(err)
	}
	var ge *GrantedError
	if err := d.Remove("reception"); !errors.As(err, &ge) || ge.Policy != "Reception" ||
		len(ge.Users) != 1 || ge.Users[0] != "adele@contoso.com" || len(ge.Groups) != 1 || ge.Groups[0] != "front-desk" {
		t.Fatalf("Remove = %v (%+v)", err, ge)
	}
}

// TestDocumentRoundTrip: creating a policy, granting it, revoking it and
// removing it gives back the file byte for byte, or (where sections were
// created on the way) what it meant.
func TestDocumentRoundTrip(t *testing.T) {
	for _, in := range []string{commented, "", "policies: []\n", "policies:\n- identity: Global\n", "policies: [{identity: Global}]\nassignments: {}\n"} {
		d, err := ParseDocument("p.yaml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		before := modelOf(d.Policies())
		steps := []func() error{
			func() error { return d.New("SalesPolicy", sales) },
			func() error { return d.GrantUser("ken@contoso.com", "SalesPolicy") },
			func() error { return d.GrantGroup("factory-floor", "SalesPolicy", 7) },
			func() error { return d.Set("SalesPolicy", Changes{AllowCallPark: ptr(false)}) },
			func() error { return d.RevokeUser("ken@contoso.com") },
			func() error { return d.RevokeGroup("factory-floor") },
			func() error { return d.Remove("SalesPolicy") },
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("%q: step %d: %v\n%s", in, i, err, d.Bytes())
			}
		}
		got := string(d.Bytes())
		set, err := Parse("p.yaml", d.Bytes())
		switch {
		case err != nil:
			t.Errorf("%q: result does not parse: %v\n%s", in, err, got)
		case !modelOf(set).equal(before):
			t.Errorf("%q: round trip changed the policies:\n%s", in, got)
		case in == commented && got != in:
			t.Errorf("round trip gave:\n%s", got)
		}
	}
}

func TestChanges(t *testing.T) {
	if !(Changes{}).IsZero() || sales.IsZero() {
		t.Error("IsZero")
	}
	p := sales.Apply(Default("SalesPolicy"))
	want := Policy{Identity: "SalesPolicy", Description: "Sales floor", AllowCallPark: true, PickupRangeStart: 500, PickupRangeEnd: 1500, ParkTimeoutSeconds: 600}
	if p != want {
		t.Errorf("Apply = %+v", p)
	}
	if got := predecessors("pickup_range_start"); strings.Join(got, ",") != "allow_call_park,description,identity" {
		t.Errorf("predecessors = %v", got)
	}
}

// TestDocumentChangeChecks: an edit whose result does not validate, or
// means more than intended, is not kept.
func TestDocumentChangeChecks(t *testing.T) {
	d, err := ParseDocument("p.yaml", []byte(commented))
	if err != nil {
		t.Fatal(err)
	}
	want := modelOf(d.Policies())
	invalid := func(t *yamlText) ([]byte, error) {
		return []byte(strings.Replace(string(t.src), "rank: 1", "rank: 0", 1)), nil
	}
	err = d.change(want, invalid)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Line != 0 || ps[0].File != "" || !strings.Contains(ps[0].Msg, "rank 0 is out of range") {
		t.Errorf("invalid result: %#v", err)
	}
	other := func(t *yamlText) ([]byte, error) {
		return []byte(strings.Replace(string(t.src), "rank: 1", "rank: 2", 1)), nil
	}
	if err := d.change(want, other); err == nil || !strings.Contains(err.Error(), "make it by hand") {
		t.Errorf("unintended result: %v", err)
	}
	if string(d.Bytes()) != commented {
		t.Error("a refused change was kept")
	}
}

// layouts are policy files written in the many ways YAML allows.
var layouts = []string{
	commented,
	"",
	strings.ReplaceAll(commented, "\n", "\r\n"),
	"---\n# doc\npolicies:\n- identity: Global\n  # inner comment\n  allow_call_park: true\n\n- {identity: F, description: \"flow\"}\nassignments:\n  users:\n  - {user: u1@x.com, policy: F}\n  groups: []\n...\n",
	"policies:   # list\n\n    -   identity: Deep\n        allow_call_park: true    # x\n\n        # about the end\n        pickup_range_end: 80\n\n\nassignments: {}\n",
	"assignments:\n  groups:\n    - group: g1\n      policy: Global\n      rank: 9\n# trailing comment\n",
	"policies:\n  - identity: A\n    description: >\n      folded\n      text\n\n  - identity: B\n",
	"policies:\n  - allow_call_park: true\n    description: \"a # b\"  # c\n    identity: Global\n  -\n    identity: B\n    description: a#b\n# x\n  # y\nassignments:\n    users:\n    # none\n",
	"policies: !!seq\n  - !!map\n    identity: !!str A\n",
	"assignments:\n    groups:\n    -   group: g1\n        policy: Global\n        rank: 2\n    # end of groups\n\n# policies below\npolicies:\n-   identity: B\n    # end of B\n",
	"policies:\n  - identity: Global\n  # end of list\nassignments:\n  users:\n    - user: u1@x.com\n      policy: Global\n\n    - user: u2@x.com\n      policy: Global\n  # end of users\n",
	"policies: [{identity: A, pickup_range_end: 60}, {identity: B}]\nassignments: {users: [{user: u1@x.com, policy: A}], groups: []}\n",
	"policies:\n  - {identity: A, description: it's fine}  # Ann's\n  - {identity: B, description: 'a, ''b''', allow_call_park: true}\n",
	"{policies: [{identity: A}], assignments: {groups: [{group: g1, policy: A, rank: 3}]}}  # all flow\n",
	"policies: [{identity: A}]\nassignments: {}\n",
}

// TestDocumentRandomEdits runs random edits on every layout: each either
// succeeds with a valid file or fails on a rule (never on the layout) and
// leaves the document unchanged.
func TestDocumentRandomEdits(t *testing.T) {
	ids := []string{"Global", "A", "B", "F", "Deep", "Reception", "New1", "new1"}
	users := []string{"u1@x.com", "u2@x.com", "adele@contoso.com"}
	groups := []string{"g1", "g2", "front-desk"}
	changes := []Changes{
		{Description: ptr("x: y")},
		{AllowCallPark: ptr(true)},
		{AllowCallPark: ptr(false), ParkTimeoutSeconds: ptr(200)},
		{PickupRangeStart: ptr(11), Description: ptr("")},
		{PickupRangeEnd: ptr(55), Description: ptr("it's [ok]")},
	}
	for li, in := range layouts {
		r := rand.New(rand.NewSource(int64(li)))
		for run := 0; run < 60; run++ {
			d, err := ParseDocument("p.yaml", []byte(in))
			if err != nil {
				t.Fatalf("layout %d: %v", li, err)
			}
			for step := 0; step < 10; step++ {
				before := d.Bytes()
				var what string
				var err error
				switch id, u, g := ids[r.Intn(len(ids))], users[r.Intn(len(users))], groups[r.Intn(len(groups))]; r.Intn(8) {
				case 0:
					what, err = "new "+id, d.New(id, changes[r.Intn(len(changes))])
				case 1:
					what, err = "set "+id, d.Set(id, changes[r.Intn(len(changes))])
				case 2:
					what, err = "remove "+id, d.Remove(id)
				case 3, 4:
					what, err = "grant "+u+" "+id, d.GrantUser(u, id)
				case 5:
					what, err = "revoke "+u, d.RevokeUser(u)
				case 6:
					what, err = "grant "+g+" "+id, d.GrantGroup(g, id, 1+r.Intn(5))
				case 7:
					what, err = "revoke "+g, d.RevokeGroup(g)
				}
				if err != nil {
					if msg := err.Error(); strings.Contains(msg, "cannot make") || strings.Contains(msg, "YAML") {
						t.Fatalf("layout %d: %s: %v\n%s", li, what, err, before)
					}
					if string(d.Bytes()) != string(before) {
						t.Fatalf("layout %d: a failed %s changed the document", li, what)
					}
					continue
				}
				if _, err := Parse("p.yaml", d.Bytes()); err != nil {
					t.Fatalf("layout %d: %s gave an invalid file: %v\n%s", li, what, err, d.Bytes())
				}
			}
		}
	}
}
