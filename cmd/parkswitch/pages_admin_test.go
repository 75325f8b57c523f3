package main

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// commentedPolicies is the test policy file with an operator's comments,
// which every edit must keep.
const commentedPolicies = `# Call park policies of the test office.
policies:
  - identity: Global
  # Reception and the staff.
  - identity: DemoPark
    allow_call_park: true
  - identity: SalesPolicy
    allow_call_park: true
    pickup_range_start: 500   # the sales floor's own codes
    pickup_range_end: 501
assignments:
  groups:
    - group: staff
      policy: DemoPark
      rank: 1
    - group: sales
      policy: SalesPolicy
      rank: 2
`

// adminServer is a server whose policy file has comments, with an admin
// signed in; it returns the policy file's path.
func adminServer(t *testing.T) (*testServer, *browserless, string) {
	t.Helper()
	ts := startServerWith(t, serverSetup{extraYAML: pagesYAML(t), files: map[string]string{"policies.yaml": commentedPolicies}})
	file := filepath.Join(filepath.Dir(ts.cfg.Path), "policies.yaml")
	if err := ts.reloader.reload("test"); err != nil {
		t.Fatal(err)
	}
	b := newBrowserless(t, ts)
	b.signIn("ops", "ops-password")
	return ts, b, file
}

func readText(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// fieldError is the error shown next to field on a page, "" for none.
func fieldError(body, field string) string {
	m := regexp.MustCompile(`<p class="field-error" data-field="` + field + `" role="alert">([^<]*)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestAdminPolicies: Add, Edit and Delete on the Manage policies page
// edit the policy file keeping its comments, and the switch has the new
// policies as soon as the page says so; refusals are shown next to their
// field with what was typed, and leave the file as it was.
func TestAdminPolicies(t *testing.T) {
	ts, b, file := adminServer(t)
	res, body := b.do("GET", "/admin/policies", nil)
	expect(t, "Manage policies", res, body, 200, "")
	for _, want := range []string{"Manage policies", "Group policy assignment", `href="/admin/policies/new"`, `<tr data-policy="SalesPolicy">`, "500–501"} {
		if !strings.Contains(body, want) {
			t.Errorf("Manage policies lacks %q", want)
		}
	}
	res, body = b.do("GET", "/admin/policies/new", nil)
	expect(t, "Add page", res, body, 200, "")
	for _, want := range []string{`name="pickup_range_start" inputmode="numeric" value="10"`, `name="pickup_range_end" inputmode="numeric" value="99"`,
		`name="park_timeout_seconds" inputmode="numeric" value="300"`, "Call pickup start of range", "Park timeout (seconds)"} {
		if !strings.Contains(body, want) {
			t.Errorf("Add page lacks the Teams default %q", want)
		}
	}

	policyForm := func(kv ...string) url.Values {
		f := url.Values{"csrf": {b.csrf}, "identity": {"Support"}, "description": {"Help desk"}, "allow_call_park": {"on"},
			"pickup_range_start": {"200"}, "pickup_range_end": {"210"}, "park_timeout_seconds": {"600"}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	before := readText(t, file)
	refusals := []struct {
		name, field, says string
		form              url.Values
	}{
		{"end below start", "pickup_range_end", "pickup_range_end 150 is out of range: use 10–9999 and more than pickup_range_start (200).", policyForm("pickup_range_end", "150")},
		{"not a number", "park_timeout_seconds", "Enter a whole number.", policyForm("park_timeout_seconds", "ten minutes")},
		{"timeout too long", "park_timeout_seconds", "park_timeout_seconds 3600 is out of range: use 120–1800 (2 to 30 minutes).", policyForm("park_timeout_seconds", "3600")},
		{"name taken", "identity", "Policy DemoPark already exists (names ignore case): change it instead, or pick another name.", policyForm("identity", "demopark")},
		{"no name", "identity", "Identity is empty: give the policy a name.", policyForm("identity", " ")},
	}
	for _, tt := range refusals {
		res, body := b.do("POST", "/admin/policies/new", tt.form)
		expect(t, tt.name, res, body, 422, "")
		if got := fieldError(body, tt.field); got != tt.says {
			t.Errorf("%s: next to %s the page says %q, want %q", tt.name, tt.field, got, tt.says)
		}
		if !strings.Contains(body, `value="`+tt.form.Get(tt.field)+`"`) && tt.field != "identity" {
			t.Errorf("%s: the form lost what was typed in %s", tt.name, tt.field)
		}
		if readText(t, file) != before {
			t.Fatalf("%s: a refused edit changed the policy file", tt.name)
		}
	}

	res, body = b.do("POST", "/admin/policies/new", policyForm())
	expect(t, "Add Support", res, body, 303, "/admin/policies")
	after := readText(t, file)
	for _, want := range []string{"# Call park policies of the test office.", "# Reception and the staff.", "# the sales floor's own codes",
		"- identity: Support\n    description: Help desk\n    allow_call_park: true\n    pickup_range_start: 200\n    pickup_range_end: 210\n    park_timeout_seconds: 600\n"} {
		if !strings.Contains(after, want) {
			t.Errorf("policy file after Add lacks %q:\n%s", want, after)
		}
	}
	if p, ok := ts.sw.Policies().Lookup("support"); !ok || p.PickupRangeEnd != 210 || !p.AllowCallPark {
		t.Errorf("the switch has Support = %+v, %v right after the page said it was added", p, ok)
	}
	res, body = b.do("GET", "/admin/policies", nil)
	expect(t, "list after Add", res, body, 200, "")
	if !strings.Contains(body, "Policy Support created in") || !strings.Contains(body, "It is in force now.") || !strings.Contains(body, `<tr data-policy="Support">`) {
		t.Errorf("list after Add:\n%s", body)
	}

	// Edit writes only what changed; the name stays.
	res, body = b.do("GET", "/admin/policies/edit?identity=support", nil)
	expect(t, "Edit page", res, body, 200, "")
	if !strings.Contains(body, `name="identity" value="Support" readonly`) {
		t.Errorf("Edit page does not show the name read-only:\n%s", body)
	}
	res, body = b.do("POST", "/admin/policies/edit", policyForm("park_timeout_seconds", "900"))
	expect(t, "Edit Support", res, body, 303, "/admin/policies")
	if got := readText(t, file); got != strings.Replace(after, "park_timeout_seconds: 600", "park_timeout_seconds: 900", 1) {
		t.Errorf("Edit changed more than the timeout:\n%s", got)
	}
	if p, _ := ts.sw.Policies().Lookup("Support"); p.ParkTimeoutSeconds != 900 {
		t.Errorf("the switch's Support times out after %d s, want 900", p.ParkTimeoutSeconds)
	}
	res, body = b.do("POST", "/admin/policies/edit", policyForm("pickup_range_start", "9"))
	expect(t, "Edit refused", res, body, 422, "")
	if got := fieldError(body, "pickup_range_start"); !strings.Contains(got, "pickup_range_start 9 is out of range") {
		t.Errorf("refused Edit says %q next to the start", got)
	}

	// Delete: refused while granted, shown on the row; then done.
	edited := readText(t, file)
	res, body = b.do("POST", "/admin/policies/delete", url.Values{"csrf": {b.csrf}, "identity": {"DemoPark"}})
	expect(t, "Delete a granted policy", res, body, 409, "")
	if !strings.Contains(body, "Policy DemoPark is still granted to group staff: remove those grants first.") {
		t.Errorf("refused Delete says:\n%s", body)
	}
	if readText(t, file) != edited {
		t.Fatal("a refused Delete changed the policy file")
	}
	res, body = b.do("POST", "/admin/policies/delete", url.Values{"csrf": {b.csrf}, "identity": {"Support"}})
	expect(t, "Delete Support", res, body, 303, "/admin/policies")
	if _, ok := ts.sw.Policies().Lookup("Support"); ok || strings.Contains(readText(t, file), "Support") {
		t.Error("Support is still there after Delete")
	}
	if got := readText(t, file); got != before {
		t.Errorf("Add then Delete did not give back the file:\n%s\nwant\n%s", got, before)
	}
}

// TestAdminGrants: Group policy assignment lists grants by rank, adds
// and removes them; a rank tie is refused next to the rank; users get a
// direct grant and lose it; each is in force at once.
func TestAdminGrants(t *testing.T) {
	ts, b, file := adminServer(t)
	res, body := b.do("GET", "/admin/groups", nil)
	expect(t, "Group policy assignment", res, body, 200, "")
	if i, j := strings.Index(body, `data-group="staff"`), strings.Index(body, `data-group="sales"`); i < 0 || j < i {
		t.Errorf("groups not listed by rank (staff 1, sales 2):\n%s", body)
	}
	if !strings.Contains(body, `name="rank" inputmode="numeric" value="3"`) {
		t.Error("the Add group form does not offer the next rank, 3")
	}
	grant := func(group, rank, pol string) url.Values {
		return url.Values{"csrf": {b.csrf}, "group": {group}, "rank": {rank}, "policy": {pol}}
	}
	before := readText(t, file)
	res, body = b.do("POST", "/admin/groups/add", grant("warehouse", "1", "SalesPolicy"))
	expect(t, "rank tie", res, body, 422, "")
	if got := fieldError(body, "rank"); got != "Rank 1 is already used by group staff (policy DemoPark): rank ties are not allowed, pick another rank." {
		t.Errorf("rank tie says %q next to the rank", got)
	}
	res, body = b.do("POST", "/admin/groups/add", grant("", "3", "SalesPolicy"))
	expect(t, "no group", res, body, 422, "")
	if fieldError(body, "group") == "" {
		t.Error("no error next to an empty group")
	}
	if readText(t, file) != before {
		t.Fatal("a refused grant changed the policy file")
	}
	res, body = b.do("POST", "/admin/groups/add", grant("warehouse", "3", "SalesPolicy"))
	expect(t, "grant warehouse", res, body, 303, "/admin/groups")
	if got := readText(t, file); !strings.Contains(got, "    - group: warehouse\n      policy: SalesPolicy\n      rank: 3\n") || !strings.Contains(got, "# Reception and the staff.") {
		t.Errorf("policy file after the group grant:\n%s", got)
	}
	found := false
	for _, g := range ts.sw.Policies().GroupGrants() {
		found = found || (g.Group == "warehouse" && g.Rank == 3 && g.Policy == "SalesPolicy")
	}
	if !found {
		t.Errorf("the switch's group grants %+v lack warehouse", ts.sw.Policies().GroupGrants())
	}
	res, body = b.do("POST", "/admin/groups/remove", url.Values{"csrf": {b.csrf}, "group": {"warehouse"}})
	expect(t, "remove warehouse", res, body, 303, "/admin/groups")
	if readText(t, file) != before {
		t.Error("grant then remove did not give back the file")
	}

	// Users: Dave (no group) gets SalesPolicy directly, then Global again.
	res, body = b.do("GET", "/admin/users", nil)
	expect(t, "Users", res, body, 200, "")
	dave := regexp.MustCompile(`(?s)<tr data-user="1004@contoso.com">.*?</tr>`)
	if row := dave.FindString(body); !strings.Contains(row, "Global") || !strings.Contains(row, "org-wide default") {
		t.Errorf("Dave's row: %s", row)
	}
	res, body = b.do("POST", "/admin/users/grant", url.Values{"csrf": {b.csrf}, "user": {"1004@contoso.com"}, "policy": {"Nope"}})
	expect(t, "grant of no policy", res, body, 422, "")
	if got := fieldError(body, "policy"); !strings.HasPrefix(got, "No policy named Nope") {
		t.Errorf("grant of no policy says %q next to the policy", got)
	}
	res, body = b.do("POST", "/admin/users/grant", url.Values{"csrf": {b.csrf}, "user": {"1004@contoso.com"}, "policy": {"SalesPolicy"}})
	expect(t, "grant Dave", res, body, 303, "/admin/users")
	if got := ts.sw.Policies().Resolve("1004@contoso.com", nil).Identity; got != "SalesPolicy" {
		t.Errorf("Dave's policy in force is %s, want SalesPolicy", got)
	}
	_, body = b.do("GET", "/admin/users", nil)
	if row := dave.FindString(body); !strings.Contains(row, "SalesPolicy") || !strings.Contains(row, "direct grant") || !strings.Contains(row, "Unassign") {
		t.Errorf("Dave's row after the grant: %s", row)
	}
	res, body = b.do("POST", "/admin/users/revoke", url.Values{"csrf": {b.csrf}, "user": {"1004@contoso.com"}})
	expect(t, "unassign Dave", res, body, 303, "/admin/users")
	if got := ts.sw.Policies().Resolve("1004@contoso.com", nil).Identity; got != "Global" {
		t.Errorf("Dave's policy after unassign is %s, want Global", got)
	}
	// The emptied list stays, as the CLI leaves it: users: [].
	if got := readText(t, file); strings.Contains(got, "1004") || !strings.Contains(got, "# Reception and the staff.") {
		t.Errorf("policy file after assign and unassign:\n%s", got)
	}
}

// TestAdminViewer: a viewer sees the policies and grants but not the
// forms, and may not post them.
func TestAdminViewer(t *testing.T) {
	ts, _, file := adminServer(t)
	v := newBrowserless(t, ts)
	v.signIn("desk", "desk-password")
	for _, p := range []string{"/admin/policies", "/admin/groups", "/admin/users"} {
		res, body := v.do("GET", p, nil)
		expect(t, "viewer "+p, res, body, 200, "")
		if strings.Contains(body, "<form method=\"post\" action=\"/admin") || strings.Contains(body, "+ Add") {
			t.Errorf("viewer's %s offers edits", p)
		}
	}
	res, body := v.do("GET", "/admin/policies/new", nil)
	expect(t, "viewer opens Add", res, body, 403, "")
	before := readText(t, file)
	res, body = v.do("POST", "/admin/policies/new", url.Values{"csrf": {v.csrf}, "identity": {"Support"}})
	expect(t, "viewer posts Add", res, body, 403, "")
	res, body = v.do("POST", "/admin/groups/remove", url.Values{"csrf": {v.csrf}, "group": {"staff"}})
	expect(t, "viewer removes a group", res, body, 403, "")
	if readText(t, file) != before {
		t.Error("a viewer changed the policy file")
	}
}
