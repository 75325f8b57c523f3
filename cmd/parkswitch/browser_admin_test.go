package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowserAdmin: in Chromium, an admin adds a call park policy on the
// Manage policies page; a pickup range that ends below its start is
// refused next to that field, with what was typed kept; once corrected the
// policy is in the file and in force; then a group is granted it on Group
// policy assignment, listed by rank.
func TestBrowserAdmin(t *testing.T) {
	br := startBrowser(t)
	ts := startServerWith(t, serverSetup{extraYAML: pagesYAML(t), files: map[string]string{"policies.yaml": commentedPolicies}})
	if err := ts.reloader.reload("test"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(filepath.Dir(ts.cfg.Path), "policies.yaml")
	base := "http://" + ts.httpAddr()
	br.signIn(base, "ops", "ops-password")

	br.click(`header nav a[href="/admin/policies"]`, true)
	if got := br.text(`.tabs a[aria-current="page"]`); got != "Manage policies" {
		t.Errorf("the policies page opens on tab %q", got)
	}
	br.click(`#add-policy`, true)
	br.fill(`input[name=identity]`, "Support")
	br.fill(`input[name=description]`, "Help desk")
	br.click(`input[name=allow_call_park]`, false)
	br.fill(`input[name=pickup_range_start]`, "200")
	br.fill(`input[name=pickup_range_end]`, "150")
	br.click(`form.policy-form button[type=submit]`, true)
	next := `label:has(> input[name=pickup_range_end]) p.field-error`
	if err := br.wait(next, "visible", 5*time.Second); err != nil {
		t.Fatalf("no error next to the end of the range: %v", err)
	}
	if got := br.text(next); got != "pickup_range_end 150 is out of range: use 10–9999 and more than pickup_range_start (200)." {
		t.Errorf("next to the end of the range: %q", got)
	}
	if path := os.Getenv("PARKSWITCH_ADMIN_SCREENSHOT"); path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatal(err)
		}
		br.must("screenshot", map[string]any{"path": abs, "fullPage": true})
	}
	if n := br.count(`p.field-error`); n != 1 {
		t.Errorf("%d field errors shown, want the one", n)
	}
	if strings.Contains(readText(t, file), "Support") {
		t.Fatal("the refused policy is in the file")
	}
	var typed string
	if err := jsonValue(br.must("value", map[string]any{"selector": "input[name=pickup_range_end]"}), &typed); err != nil || typed != "150" {
		t.Errorf("after the refusal the end of the range holds %q, want what was typed (150)", typed)
	}
	br.fill(`input[name=pickup_range_end]`, "210")
	br.click(`form.policy-form button[type=submit]`, true)
	if err := br.wait(`tr[data-policy="Support"]`, "attached", 5*time.Second); err != nil {
		t.Fatalf("Support is not listed after Save: %v", err)
	}
	if got := br.text(`tr[data-policy="Support"]`); !strings.Contains(got, "Help desk On 200–210 300") {
		t.Errorf("Support's row says %q", got)
	}
	if got := readText(t, file); !strings.Contains(got, "- identity: Support\n    description: Help desk\n    allow_call_park: true\n    pickup_range_start: 200\n    pickup_range_end: 210\n") ||
		!strings.Contains(got, "# the sales floor's own codes") {
		t.Errorf("policy file after Add:\n%s", got)
	}
	if p, ok := ts.sw.Policies().Lookup("Support"); !ok || p.PickupRangeStart != 200 {
		t.Errorf("the switch has Support = %+v, %v", p, ok)
	}

	br.click(`.tabs a[href="/admin/groups"]`, true)
	br.fill(`form.group-form input[name=group]`, "helpdesk")
	br.must("select", map[string]any{"selector": "form.group-form select[name=policy]", "value": "Support"})
	br.click(`form.group-form button[type=submit]`, true)
	if err := br.wait(`tr[data-group="helpdesk"]`, "attached", 5*time.Second); err != nil {
		t.Fatalf("helpdesk is not listed after Apply: %v", err)
	}
	if got := br.text(`table.groups tbody`); !strings.HasPrefix(got, "1 staff DemoPark") || !strings.Contains(got, "2 sales SalesPolicy") || !strings.Contains(got, "3 helpdesk Support") {
		t.Errorf("group grants listed as %q, want by rank with helpdesk third", got)
	}
	if got := readText(t, file); !strings.Contains(got, "    - group: helpdesk\n      policy: Support\n      rank: 3\n") {
		t.Errorf("policy file after the group grant:\n%s", got)
	}
	if got := br.text(".flash"); !strings.HasPrefix(got, "Policy Support granted to group helpdesk at rank 3 in ") || !strings.HasSuffix(got, "It is in force now.") {
		t.Errorf("flash after the group grant: %q", got)
	}
}

func jsonValue(r browserReply, v any) error { return json.Unmarshal(r.Value, v) }
