package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkswitch/parkswitch/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/policy_cli")

// policyCLIData holds the test configuration (users ken.myer, adele.vance
// and megan.bowen of contoso.com), a commented policy file and the golden
// files the edits must produce.
const policyCLIData = "../../testdata/policy_cli"

// policyFixture copies the configuration and the policy file into a fresh
// directory and returns the paths of both.
func policyFixture(t *testing.T) (cfg, pol string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"parkswitch.yaml", "policies.yaml"} {
		data, err := os.ReadFile(filepath.Join(policyCLIData, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "parkswitch.yaml"), filepath.Join(dir, "policies.yaml")
}

// runPolicy runs "parkswitch policy args..." in-process.
func runPolicy(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"policy"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// mustPolicy runs a command that must succeed with one line of output.
func mustPolicy(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	code, out, errs := runPolicy(t, append(args, "--config", cfg)...)
	if code != 0 || errs != "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("policy %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return strings.TrimSuffix(out, "\n")
}

// golden compares got with testdata/policy_cli/name, or rewrites the file
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(policyCLIData, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The Teams examples, as parkswitch commands.
var (
	newSales     = []string{"new", "SalesPolicy", "--allow-call-park", "--pickup-range-start", "500", "--pickup-range-end", "1500", "--park-timeout-seconds", "600", "--description", "Sales floor"}
	disallowPark = []string{"set", "SalesPolicy", "--allow-call-park=false"}
	grantKen     = []string{"grant", "SalesPolicy", "--user", "ken.myer@contoso.com"}
	revokeKen    = []string{"grant", "--user", "ken.myer@contoso.com", "--remove"}
	removeSales  = []string{"remove", "SalesPolicy"}
	grantFloor   = []string{"grant", "SalesPolicy", "--group", "factory-floor", "--rank", "2"}
)

// TestPolicyCLITeamsExamples: each example edits the commented policy file
// into exactly its golden file: comments, blank lines and key order kept.
func TestPolicyCLITeamsExamples(t *testing.T) {
	tests := []struct {
		golden string
		cmds   [][]string
		last   string // the last command's output, with FILE for the policy file
	}{
		{"new_salespolicy.golden", [][]string{newSales}, "policy SalesPolicy created in FILE"},
		{"set_allow_call_park_false.golden", [][]string{newSales, disallowPark}, "policy SalesPolicy updated in FILE"},
		{"grant_user.golden", [][]string{newSales, grantKen}, "policy SalesPolicy granted to user ken.myer@contoso.com in FILE"},
		{"revoke_user.golden", [][]string{newSales, grantKen, revokeKen},
			"direct grant of user ken.myer@contoso.com removed from FILE: it now gets policy Global"},
		{"revoke_user_to_group.golden", [][]string{newSales, grantFloor, grantKen, revokeKen},
			"direct grant of user ken.myer@contoso.com removed from FILE: it now gets policy SalesPolicy through group factory-floor"},
		{"remove_after_revoke.golden", [][]string{newSales, grantKen, revokeKen, removeSales}, "policy SalesPolicy removed from FILE"},
		{"grant_group.golden", [][]string{newSales, grantFloor}, "policy SalesPolicy granted to group factory-floor at rank 2 in FILE"},
		{"grant_user_replace.golden", [][]string{newSales, {"grant", "salespolicy", "--user", "Adele.Vance@contoso.com"}},
			"policy SalesPolicy granted to user adele.vance@contoso.com in FILE"},
		{"set_reception.golden", [][]string{{"set", "Tag:Reception", "--park-timeout-seconds", "600", "--description", "Front desk"}},
			"policy Reception updated in FILE"},
		{"remove_global.golden", [][]string{{"remove", "global"}}, "policy Global reset to the defaults in FILE (Global always exists)"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.golden, ".golden"), func(t *testing.T) {
			cfg, pol := policyFixture(t)
			var out string
			for _, c := range tt.cmds {
				out = mustPolicy(t, cfg, c...)
			}
			if want := strings.ReplaceAll(tt.last, "FILE", pol); out != want {
				t.Errorf("output %q, want %q", out, want)
			}
			got := readFile(t, pol)
			golden(t, tt.golden, got)
			if code, _, errs := runCheck(cfg); code != 0 {
				t.Errorf("parkswitch check refuses the result: %s", errs)
			}
		})
	}
}

func runCheck(cfg string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", cfg}, &out, &errb)
	return code, out.String(), errb.String()
}

// TestPolicyCLIRoundTrip: creating, granting, revoking and removing a policy
// gives back the operator's file byte for byte.
func TestPolicyCLIRoundTrip(t *testing.T) {
	cfg, pol := policyFixture(t)
	before := readFile(t, pol)
	for _, c := range [][]string{newSales, grantKen, grantFloor, disallowPark, revokeKen, {"grant", "--group", "factory-floor", "--remove"}, removeSales} {
		mustPolicy(t, cfg, c...)
	}
	if after := readFile(t, pol); !bytes.Equal(after, before) {
		t.Errorf("the file did not come back:\n%s", after)
	}
}

// TestPolicyCLIFlagOrder: flags may come before, between or after the
// identity.
func TestPolicyCLIFlagOrder(t *testing.T) {
	cfg, pol := policyFixture(t)
	mustPolicy(t, cfg, "new", "--allow-call-park", "--pickup-range-start", "500", "SalesPolicy", "--pickup-range-end=1500",
		"--park-timeout-seconds", "600", "--description", "Sales floor")
	golden(t, "new_salespolicy.golden", readFile(t, pol))

	cfg, pol = policyFixture(t)
	if code, _, errs := runPolicy(t, "new", "--config", cfg, "--description", "Sales floor", "--", "SalesPolicy"); code != 0 {
		t.Fatalf("-- before the identity: exit %d: %s", code, errs)
	}
	if !strings.Contains(string(readFile(t, pol)), "  - identity: SalesPolicy\n    description: Sales floor\n") {
		t.Errorf("-- before the identity:\n%s", readFile(t, pol))
	}
}

// TestPolicyCLIRefusals: bad input exits 1 with one line saying what to fix,
// and leaves the file byte for byte as it was.
func TestPolicyCLIRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup [][]string
		args  []string
		want  string
	}{
		{"start below range", nil, []string{"new", "X", "--pickup-range-start", "9"},
			"pickup_range_start 9 is out of range: use 10–9999"},
		{"end above range", nil, []string{"new", "X", "--pickup-range-start", "500", "--pickup-range-end", "10000"},
			"pickup_range_end 10000 is out of range: use 10–9999 and more than pickup_range_start (500)"},
		{"start not below end", nil, []string{"new", "X", "--pickup-range-start", "700", "--pickup-range-end", "600"},
			"pickup_range_end 600 is out of range: use 10–9999 and more than pickup_range_start (700)"},
		{"start equal to end", nil, []string{"set", "Reception", "--pickup-range-start", "49"},
			"pickup_range_end 49 (unchanged) is out of range: use 10–9999 and more than pickup_range_start (49)"},
		{"timeout too short", nil, []string{"new", "X", "--park-timeout-seconds", "119"},
			"park_timeout_seconds 119 is out of range: use 120–1800 (2 to 30 minutes)"},
		{"timeout too long", nil, []string{"set", "Reception", "--park-timeout-seconds", "1801"},
			"park_timeout_seconds 1801 is out of range: use 120–1800 (2 to 30 minutes)"},
		{"several at once", nil, []string{"new", "X", "--pickup-range-start", "9", "--park-timeout-seconds", "5"},
			"pickup_range_start 9 is out of range: use 10–9999; park_timeout_seconds 5 is out of range"},
		{"unknown policy set", nil, []string{"set", "Nope", "--allow-call-park=true"},
			"no policy named Nope: the policies are Global, Reception"},
		{"unknown policy grant", nil, []string{"grant", "Nope", "--user", "ken.myer@contoso.com"}, "no policy named Nope"},
		{"unknown policy group grant", nil, []string{"grant", "Nope", "--group", "sales", "--rank", "3"}, "no policy named Nope"},
		{"unknown policy remove", nil, []string{"remove", "Nope"}, "no policy named Nope"},
		{"duplicate identity", nil, []string{"new", "reception"}, "policy Reception already exists (names ignore case)"},
		{"Global exists", nil, []string{"new", "GLOBAL"}, "policy Global already exists"},
		{"rank tie", nil, []string{"grant", "Global", "--group", "sales", "--rank", "1"},
			"rank 1 is already used by group front-desk (policy Reception): rank ties are not allowed, pick another rank"},
		{"rank zero", nil, []string{"grant", "Global", "--group", "sales", "--rank", "0"}, "rank 0 is out of range: use 1 or more"},
		{"unknown user", nil, []string{"grant", "Reception", "--user", "bob@contoso.com"},
			`unknown user "bob@contoso.com": name a user listed under users in`},
		{"user name instead of id", nil, []string{"grant", "Reception", "--user", "ken.myer"},
			`user "ken.myer" is not a user id: write ken.myer@contoso.com`},
		{"revoke without a grant", nil, []string{"grant", "--user", "megan.bowen@contoso.com", "--remove"},
			"user megan.bowen@contoso.com has no direct grant"},
		{"revoke an unknown user", nil, []string{"grant", "--user", "bob@contoso.com", "--remove"}, `unknown user "bob@contoso.com"`},
		{"still granted", [][]string{newSales, grantKen, grantFloor}, []string{"remove", "SalesPolicy"},
			"policy SalesPolicy is still granted to user ken.myer@contoso.com and group factory-floor: remove those grants first " +
				"(policy grant --user ken.myer@contoso.com --remove; policy grant --group factory-floor --remove)"},
		{"range swallows an extension", nil, []string{"new", "X", "--pickup-range-start", "2000", "--pickup-range-end", "2100"},
			"extension 2001 of ken.myer@contoso.com is in the pickup range 2000–2100 of policy X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, pol := policyFixture(t)
			for _, c := range tt.setup {
				mustPolicy(t, cfg, c...)
			}
			before := readFile(t, pol)
			code, out, errs := runPolicy(t, append(tt.args, "--config", cfg)...)
			if code != 1 || out != "" {
				t.Errorf("exit %d, stdout %q; want exit 1 and no output", code, out)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "parkswitch: ") || !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q, want one line with %q", errs, tt.want)
			}
			if after := readFile(t, pol); !bytes.Equal(after, before) {
				t.Errorf("the policy file changed:\n%s", after)
			}
			assertNoTempFiles(t, filepath.Dir(pol))
		})
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "parkswitch.yaml" && n != "policies.yaml" && n != "real" {
			t.Errorf("left behind: %s", n)
		}
	}
}

// TestPolicyCLIUsage: usage mistakes exit 2 and touch nothing.
func TestPolicyCLIUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"new"}, "give exactly one policy identity"},
		{[]string{"new", "A", "B"}, "give exactly one policy identity"},
		{[]string{"new", "A", "--pickup-range-start", "ten"}, `bad value "ten" for --pickup-range-start: write a whole number`},
		{[]string{"new", "A", "--colour", "red"}, "unknown flag --colour; usage: parkswitch policy new <identity>"},
		{[]string{"set", "A"}, "give at least one of"},
		{[]string{"set", "A", "--allow-call-park", "false"}, "write --allow-call-park=false, with an equals sign"},
		{[]string{"remove"}, "give exactly one policy identity"},
		{[]string{"grant", "A"}, "give --user <id> or --group <name>"},
		{[]string{"grant", "A", "--user", "u", "--group", "g"}, "not both"},
		{[]string{"grant", "--user", "u"}, "name the policy to grant"},
		{[]string{"grant", "A", "--user", "u", "--remove"}, "--remove takes no policy identity"},
		{[]string{"grant", "A", "--user", "u", "--rank", "1"}, "--rank is for group grants only"},
		{[]string{"grant", "A", "--group", "g"}, "a group grant needs --rank N"},
		{[]string{"grant", "--group", "g", "--rank", "1", "--remove"}, "--remove takes no --rank"},
		{[]string{"get", "--output", "xml"}, `--output "xml" is not a format: use table, yaml or json`},
		{[]string{"get", "A", "B"}, "give at most one policy identity"},
		{[]string{"rename", "A"}, `unknown command "rename"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cfg, pol := policyFixture(t)
			before := readFile(t, pol)
			code, out, errs := runPolicy(t, append(tt.args, "--config", cfg)...)
			if code != 2 || out != "" || !strings.Contains(errs, tt.want) || !strings.Contains(errs, "usage:") {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit 2 and %q", code, out, errs, tt.want)
			}
			if !bytes.Equal(readFile(t, pol), before) {
				t.Error("the policy file changed")
			}
		})
	}
	if code, out, _ := runPolicy(t, "new", "-h"); code != 0 || !strings.Contains(out, "usage: parkswitch policy new") || !strings.Contains(out, "-pickup-range-start") {
		t.Errorf("policy new -h: exit %d\n%s", code, out)
	}
	if code, out, _ := runPolicy(t, "help"); code != 0 || !strings.Contains(out, "parkswitch policy grant  --user <id> | --group <name> --remove") {
		t.Errorf("policy help: exit %d\n%s", code, out)
	}
}

// TestPolicyCLIGet: the table for people, YAML and JSON for scripts.
func TestPolicyCLIGet(t *testing.T) {
	cfg, _ := policyFixture(t)
	for _, c := range [][]string{newSales, grantKen, grantFloor} {
		mustPolicy(t, cfg, c...)
	}
	get := func(args ...string) string {
		t.Helper()
		code, out, errs := runPolicy(t, append(append([]string{"get"}, args...), "--config", cfg)...)
		if code != 0 || errs != "" {
			t.Fatalf("get %v: exit %d: %s", args, code, errs)
		}
		return out
	}
	golden(t, "get_table.golden", []byte(get()))
	golden(t, "get_yaml.golden", []byte(get("--output", "yaml")))
	golden(t, "get_json.golden", []byte(get("--output", "json")))

	// The YAML is a policy file meaning the same.
	set, err := policy.Parse("get.yaml", []byte(get("--output", "yaml")))
	if err != nil {
		t.Fatalf("get --output yaml is not a valid policy file: %v", err)
	}
	if p, _ := set.Lookup("SalesPolicy"); p.PickupRangeEnd != 1500 || len(set.UserGrants()) != 2 || len(set.GroupGrants()) != 2 {
		t.Errorf("get --output yaml lost something: %+v", set)
	}

	var all struct {
		Policies    []policy.Policy `json:"policies"`
		Assignments struct {
			Users  []policy.UserGrant  `json:"users"`
			Groups []policy.GroupGrant `json:"groups"`
		} `json:"assignments"`
	}
	if err := json.Unmarshal([]byte(get("--output", "json")), &all); err != nil || len(all.Policies) != 3 ||
		len(all.Assignments.Users) != 2 || len(all.Assignments.Groups) != 2 {
		t.Errorf("get --output json: %v %+v", err, all)
	}

	var one policy.Policy
	if err := json.Unmarshal([]byte(get("--output=json", "tag:salespolicy")), &one); err != nil ||
		one != (policy.Policy{Identity: "SalesPolicy", Description: "Sales floor", AllowCallPark: true, PickupRangeStart: 500, PickupRangeEnd: 1500, ParkTimeoutSeconds: 600}) {
		t.Errorf("get SalesPolicy --output json: %v %+v", err, one)
	}
	wantOne := "Identity  AllowCallPark  PickupRange  ParkTimeoutSeconds  Description\nGlobal    false          10-99        300                 Org-wide default\n"
	if got := get("Global"); got != wantOne {
		t.Errorf("get Global:\n%s\nwant:\n%s", got, wantOne)
	}
	if got := get("global", "--output", "yaml"); !strings.HasPrefix(got, "identity: Global\ndescription: Org-wide default\n") {
		t.Errorf("get global --output yaml:\n%s", got)
	}

	code, out, errs := runPolicy(t, "get", "Nope", "--config", cfg)
	if code != 1 || out != "" || errs != "parkswitch: no policy named Nope: the policies are Global, Reception, SalesPolicy\n" {
		t.Errorf("get Nope: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// Without --config and with no configs/parkswitch.yaml here, get shows
	// the built-in policies; edits refuse to touch them.
	if code, out, _ := runPolicy(t, "get"); code != 0 || !strings.Contains(out, "DemoPark") {
		t.Errorf("get of the built-in configuration: exit %d\n%s", code, out)
	}
	code, out, errs = runPolicy(t, "new", "X")
	if code != 1 || out != "" || errs != "parkswitch: configs/parkswitch.yaml does not exist: pass --config FILE (the built-in configuration cannot be edited)\n" {
		t.Errorf("new on the built-in configuration: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestPolicyCLIInvalidFile: with a policy file that does not validate, get
// reports the problems and edits refuse, changing nothing.
func TestPolicyCLIInvalidFile(t *testing.T) {
	cfg, pol := policyFixture(t)
	bad := strings.Replace(string(readFile(t, pol)), "pickup_range_end: 49", "pickup_range_end: 10000", 1)
	bad = strings.Replace(bad, "park_timeout_seconds: 300", "park_timeout_seconds: 5", 1)
	writeFile(t, pol, bad)

	code, out, errs := runPolicy(t, "get", "--config", cfg)
	if code != 1 || out != "" || !strings.Contains(errs, pol+":16: pickup_range_end 10000 is out of range") ||
		!strings.Contains(errs, pol+":17: park_timeout_seconds 5 is out of range") {
		t.Errorf("get: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	code, out, errs = runPolicy(t, "set", "Reception", "--pickup-range-end", "48", "--config", cfg)
	if code != 1 || out != "" || strings.Count(errs, "\n") != 1 ||
		!strings.HasPrefix(errs, "parkswitch: "+pol+":16: pickup_range_end 10000 is out of range") || !strings.Contains(errs, "and 1 more problems") {
		t.Errorf("set: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if string(readFile(t, pol)) != bad {
		t.Error("an edit of an invalid file changed it")
	}
}

// TestPolicyCLIFile: the file is replaced atomically, keeping its mode; a
// symbolic link stays a link; a missing policy file is created.
func TestPolicyCLIFile(t *testing.T) {
	t.Run("mode", func(t *testing.T) {
		cfg, pol := policyFixture(t)
		if err := os.Chmod(pol, 0o640); err != nil {
			t.Fatal(err)
		}
		mustPolicy(t, cfg, newSales...)
		if fi, err := os.Stat(pol); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("mode after the edit: %v %v", fi.Mode(), err)
		}
		assertNoTempFiles(t, filepath.Dir(pol))
	})
	t.Run("symlink", func(t *testing.T) {
		cfg, pol := policyFixture(t)
		real := filepath.Join(filepath.Dir(pol), "real")
		if err := os.Mkdir(real, 0o755); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(real, "policies.yaml")
		if err := os.Rename(pol, target); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, pol); err != nil {
			t.Skip("no symbolic links here:", err)
		}
		mustPolicy(t, cfg, newSales...)
		if fi, err := os.Lstat(pol); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
		}
		golden(t, "new_salespolicy.golden", readFile(t, target))
		assertNoTempFiles(t, filepath.Dir(pol))
	})
	t.Run("missing", func(t *testing.T) {
		cfg, pol := policyFixture(t)
		if err := os.Remove(pol); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := runPolicy(t, "get", "--config", cfg); code != 1 {
			t.Errorf("get with no policy file: exit %d", code)
		}
		mustPolicy(t, cfg, newSales...)
		mustPolicy(t, cfg, grantKen...)
		want := "policies:\n" +
			"  - identity: SalesPolicy\n    description: Sales floor\n    allow_call_park: true\n" +
			"    pickup_range_start: 500\n    pickup_range_end: 1500\n    park_timeout_seconds: 600\n" +
			"assignments:\n  users:\n    - user: ken.myer@contoso.com\n      policy: SalesPolicy\n"
		if got := string(readFile(t, pol)); got != want {
			t.Errorf("created file:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("unchanged", func(t *testing.T) {
		cfg, pol := policyFixture(t)
		mustPolicy(t, cfg, "remove", "Global")
		fi, err := os.Stat(pol)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"set", "Reception", "--allow-call-park=true"}, "policy Reception already has these settings: FILE unchanged"},
			{[]string{"grant", "reception", "--user", "adele.vance@contoso.com"}, "user adele.vance@contoso.com already has policy Reception: FILE unchanged"},
			{[]string{"grant", "Reception", "--group", "front-desk", "--rank", "1"}, "group front-desk already has policy Reception at rank 1: FILE unchanged"},
			{[]string{"remove", "Global"}, "policy Global reset to the defaults in FILE (Global always exists)"},
		} {
			if out := mustPolicy(t, cfg, c.args...); out != strings.ReplaceAll(c.want, "FILE", pol) {
				t.Errorf("output %q, want %q", out, c.want)
			}
		}
		if after, err := os.Stat(pol); err != nil || !os.SameFile(fi, after) {
			t.Error("an edit that changes nothing rewrote the file")
		}
	})
}
