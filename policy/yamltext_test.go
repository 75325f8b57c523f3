package policy

import (
	"strings"
	"testing"
)

// TestDocumentLayouts: where the node tree and the lines tell where a value
// ends (yaml.v3 confirming it), the edit is made there, even when the value
// holds lines that look like comments.
func TestDocumentLayouts(t *testing.T) {
	setA := func(d *Document) error { return d.Set("A", Changes{Description: ptr("x")}) }
	tests := []struct {
		name string
		in   string
		edit func(d *Document) error
		want string
	}{
		{"block scalar ending in a line that looks like a comment",
			"policies:\n  - identity: A\n    description: |\n      text\n      # more\n  - identity: B\n", setA,
			"policies:\n  - identity: A\n    description: x\n  - identity: B\n"},
		{"block scalar keeping the blank line after it",
			"policies:\n  - identity: A\n    description: |+\n      text\n\n  - identity: B\n", setA,
			"policies:\n  - identity: A\n    description: x\n  - identity: B\n"},
		{"quoted scalar over lines, one looking like a comment",
			"policies:\n  - identity: A\n    description: \"one\n      # two\"   # note\n", setA,
			"policies:\n  - identity: A\n    description: \"x\"   # note\n"},
		{"plain scalar over lines with a comment after it",
			"policies:\n  - identity: A\n    description:\n      two\n      lines # note\n    allow_call_park: true\n", setA,
			"policies:\n  - identity: A\n    description:\n      x # note\n    allow_call_park: true\n"},
		{"tagged value",
			"policies:\n  - identity: A\n    description: !!str old  # note\n", setA,
			"policies:\n  - identity: A\n    description: x  # note\n"},
		{"a dash alone, a comment under it",
			"policies:\n  -\n    # the default\n    identity: Global\n",
			func(d *Document) error { return d.New("B", Changes{}) },
			"policies:\n  -\n    # the default\n    identity: Global\n  - identity: B\n"},
		{"a dash with a comment",
			"policies:\n  - # the default\n    identity: Global\n",
			func(d *Document) error { return d.Remove("Global") },
			"policies:\n  - # the default\n    identity: Global\n"},
		{"the emptied list keeps its tag and the comment",
			"policies: !!seq   # none soon\n  - identity: A\n",
			func(d *Document) error { return d.Remove("A") },
			"policies: !!seq []   # none soon\n"},
		{"a second document is left alone",
			"policies: []\n...\n---\nother: 1\n",
			func(d *Document) error { return d.New("B", Changes{}) },
			"policies:\n  - identity: B\n...\n---\nother: 1\n"},
		{"explicit key",
			"? policies\n: - identity: A\n",
			func(d *Document) error { return d.New("B", Changes{}) },
			"? policies\n: - identity: A\n  - identity: B\n"},
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
		})
	}
}

// TestDocumentLayoutRefusals: where the node tree and the lines do not tell
// for certain where a value ends, or an edit would drop what other entries
// use, the edit is refused with the line to edit by hand, and the file is
// left byte for byte as it was.
func TestDocumentLayoutRefusals(t *testing.T) {
	setA := func(d *Document) error { return d.Set("A", Changes{Description: ptr("x")}) }
	newB := func(d *Document) error { return d.New("B", Changes{}) }
	tests := []struct {
		name string
		in   string
		edit func(d *Document) error
		want string
	}{
		{"tag handle defined by a directive",
			"%TAG !e! tag:example.com,2000:\n---\npolicies:\n  - identity: A\n    description: !e!x old\n", setA,
			"line 5: cannot tell where this value ends"},
		{"flow list over several lines",
			"policies: [\n  {identity: A}\n]\n", newB,
			"line 1: a list or mapping in brackets over several lines"},
		{"flow list holding a comment",
			"policies: [\n  {identity: A},  # first\n]\n", newB,
			"line 1: cannot tell where this value ends"},
		{"flow item over several lines",
			"policies: [{identity: A,\n  description: old}]\n", setA,
			"line 1: cannot tell where this value ends"},
		{"empty list on the line after its key",
			"policies:\n  []\n", newB,
			"line 1: the value of policies is not on its line"},
		{"explicit key with no value",
			"? policies\n:\n", newB,
			"line 1: cannot find the colon after policies"},
		{"anchored value set",
			"policies:\n  - identity: A\n    description: &d old\n  - identity: B\n    description: *d\n", setA,
			"line 3: the value carries the anchor &d that other entries may use"},
		{"anchored value removed with its policy",
			"policies:\n  - identity: A\n    description: &d old\n  - identity: B\n    description: *d\n",
			func(d *Document) error { return d.Remove("A") },
			"line 3: the value carries the anchor &d"},
		{"anchored value removed with Global's settings",
			"policies:\n  - identity: Global\n    park_timeout_seconds: &t 300\n  - identity: B\n    park_timeout_seconds: *t\n",
			func(d *Document) error { return d.Remove("Global") },
			"line 3: the value carries the anchor &t"},
		{"anchored empty list filled",
			"policies: &p []\nassignments:\n  users: []\n", newB,
			"line 1: the value carries the anchor &p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDocument("p.yaml", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			err = tt.edit(d)
			if err == nil || !strings.Contains(err.Error(), "p.yaml automatically ("+tt.want) || !strings.HasSuffix(err.Error(), "make it by hand") {
				t.Fatalf("error %v, want one with %q that says to make it by hand", err, tt.want)
			}
			if got := string(d.Bytes()); got != tt.in {
				t.Errorf("a refused edit changed the document:\n%s", got)
			}
		})
	}
}
