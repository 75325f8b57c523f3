package main

import (
	"bytes"
	"slices"
	"testing"
)

// Flags may come before, between or after positional arguments; after
// "--" everything is positional.
func TestParseInterspersed(t *testing.T) {
	for _, args := range [][]string{
		{"X", "--allow-call-park=false"},
		{"--allow-call-park=false", "X"},
		{"--allow-call-park=false", "--", "X"},
	} {
		fset := newFlagSet("policy set")
		allow := fset.Bool("allow-call-park", true, "")
		var stdout, stderr bytes.Buffer
		pos, code, ok := parseInterspersed(fset, args, "usage", &stdout, &stderr)
		if !ok || code != 0 || !slices.Equal(pos, []string{"X"}) || *allow || !flagGiven(fset, "allow-call-park") {
			t.Errorf("%q: pos %q, code %d, ok %v, allow %v; stderr %q", args, pos, code, ok, *allow, stderr.String())
		}
	}
	fset := newFlagSet("policy set")
	fset.Bool("allow-call-park", true, "")
	pos, _, ok := parseInterspersed(fset, []string{"--", "X", "--allow-call-park"}, "usage", &bytes.Buffer{}, &bytes.Buffer{})
	if !ok || !slices.Equal(pos, []string{"X", "--allow-call-park"}) || flagGiven(fset, "allow-call-park") {
		t.Errorf(`after "--": pos %q, ok %v`, pos, ok)
	}
}
