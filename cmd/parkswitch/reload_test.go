package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replaceFile writes data the way editors do: a temp file renamed over the
// original, so the watcher has to follow a new inode.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".swp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyReload: with a call parked, a bad policy edit is refused (the
// old policies stay, the call stays retrievable) and a good one changes the
// next park's code range within a second.
func TestPolicyReload(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	carol := phone(t, ctx, ts, "1003", "udp")
	policies := filepath.Join(filepath.Dir(ts.cfg.Path), "policies.yaml")

	a, b := call(t, ctx, alice, bob, "1002")
	if code := parkCall(t, ctx, bob, b, a); code != "10" {
		t.Fatalf("first park got %s", code)
	}
	b.Hangup(ctx)

	// A bad edit: refused as a whole, reported in /healthz and /metrics.
	before, _ := os.ReadFile(policies)
	writeFile(t, policies, strings.Replace(string(before), "allow_call_park: true\n  - identity: SalesPolicy",
		"allow_call_park: true\n    pickup_range_end: 10000\n  - identity: SalesPolicy", 1))
	waitUntil(t, 3*time.Second, "the bad edit to be refused", func() bool { _, err := ts.reloader.status(); return err != nil })
	health := getText(t, "http://"+ts.httpAddr()+"/healthz")
	if !strings.Contains(health, "refused") || !strings.Contains(health, "policies.yaml:") {
		t.Errorf("/healthz does not say the reload was refused:\n%s", health)
	}
	if m := getText(t, "http://"+ts.httpAddr()+"/metrics"); !strings.Contains(m, "parkswitch_config_last_reload_successful 0") {
		t.Error("metrics do not show the refused reload")
	}
	if p, _ := ts.sw.Policies().Lookup("DemoPark"); p.PickupRangeEnd != 99 {
		t.Fatalf("a refused edit was applied: %+v", p)
	}

	// A good edit, written the way editors do: DemoPark moves to 200–299.
	replaceFile(t, policies, strings.Replace(string(before), "allow_call_park: true\n  - identity: SalesPolicy",
		"allow_call_park: true\n    pickup_range_start: 200\n    pickup_range_end: 299\n  - identity: SalesPolicy", 1))
	start := time.Now()
	waitUntil(t, 3*time.Second, "the good edit to apply", func() bool {
		p, _ := ts.sw.Policies().Lookup("DemoPark")
		return p.PickupRangeStart == 200
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("the edit took %v to apply, want under a second", d)
	}
	if _, err := ts.reloader.status(); err != nil {
		t.Errorf("reload status still failed: %v", err)
	}

	// The orbit parked before the edit keeps its code, now outside the
	// range, and is still retrievable; the next park uses the new range.
	a2, b2 := call(t, ctx, alice, bob, "1002")
	if code := parkCall(t, ctx, bob, b2, a2); code != "200" {
		t.Errorf("park after the edit got %s, want 200", code)
	}
	b2.Hangup(ctx)
	c, err := carol.Dial(ctx, "10")
	if err != nil {
		t.Fatalf("the orbit parked before the edit is not retrievable: %v", err)
	}
	talk(t, ctx, a, c, 10)
	c.Hangup(ctx)
	a2.Hangup(ctx)
	waitDone(t, a, "retrieved party")
}

// TestUserReload: users added to the main configuration can register once
// the file is saved; a broken main configuration is refused and the users
// in force keep working.
func TestUserReload(t *testing.T) {
	ts := startServer(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	main, _ := os.ReadFile(ts.cfg.Path)

	writeFile(t, ts.cfg.Path, string(main)+"  - id: 1007@contoso.com\n    password: demo1007\n    groups: [staff]\n")
	waitUntil(t, 3*time.Second, "user 1007 to exist", func() bool { _, ok := ts.sw.Directory().UserByName("1007"); return ok })
	phone(t, ctx, ts, "1007", "udp")

	writeFile(t, ts.cfg.Path, string(main)+"  - id: 1008@contoso.com\n    pasword: demo1008\n")
	waitUntil(t, 3*time.Second, "the broken file to be refused", func() bool { _, err := ts.reloader.status(); return err != nil })
	if _, ok := ts.sw.Directory().UserByName("1007"); !ok {
		t.Fatal("a refused reload dropped user 1007")
	}
	alice := phone(t, ctx, ts, "1001", "udp")
	bob := phone(t, ctx, ts, "1002", "udp")
	a, b := call(t, ctx, alice, bob, "1002")
	talk(t, ctx, a, b, 5)
	a.Hangup(ctx)
	waitDone(t, b, "callee")
}
