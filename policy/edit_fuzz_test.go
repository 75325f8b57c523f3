package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fuzzEdit is one edit of FuzzEdit; do returns false when it does not apply
// to the document (nothing to pick).
type fuzzEdit struct {
	name string
	kind editKind
	do   func(d *Document, pick int) (bool, error)
}

type editKind int

const (
	adds    editKind = iota // lines are added
	changes                 // lines are added, or lines are replaced by one
	removes                 // lines are taken away
)

var fuzzEdits = []fuzzEdit{
	{"new", adds, func(d *Document, _ int) (bool, error) {
		return true, d.New("Fz", Changes{Description: ptr("fuzz: it's [new]"), AllowCallPark: ptr(true)})
	}},
	{"set", changes, func(d *Document, pick int) (bool, error) {
		ps := d.Policies().Policies()
		return true, d.Set(ps[pick%len(ps)].Identity, Changes{Description: ptr("x # y")})
	}},
	{"set number", changes, func(d *Document, pick int) (bool, error) {
		ps := d.Policies().Policies()
		return true, d.Set(ps[pick%len(ps)].Identity, Changes{ParkTimeoutSeconds: ptr(600)})
	}},
	{"grant user", changes, func(d *Document, pick int) (bool, error) {
		ps := d.Policies().Policies()
		if us := d.Policies().UserGrants(); len(us) > 0 && pick%2 == 1 {
			return true, d.GrantUser(us[pick%len(us)].User, ps[pick%len(ps)].Identity)
		}
		return true, d.GrantUser("fz@x.com", ps[pick%len(ps)].Identity)
	}},
	{"grant group", adds, func(d *Document, pick int) (bool, error) {
		ps := d.Policies().Policies()
		return true, d.GrantGroup("fz-group", ps[pick%len(ps)].Identity, 1000+pick)
	}},
	{"remove", removes, func(d *Document, pick int) (bool, error) {
		ps := d.Policies().Policies()
		return true, d.Remove(ps[pick%len(ps)].Identity)
	}},
	{"revoke user", removes, func(d *Document, pick int) (bool, error) {
		us := d.Policies().UserGrants()
		if len(us) == 0 {
			return false, nil
		}
		return true, d.RevokeUser(us[pick%len(us)].User)
	}},
	{"revoke group", removes, func(d *Document, pick int) (bool, error) {
		gs := d.Policies().GroupGrants()
		if len(gs) == 0 {
			return false, nil
		}
		return true, d.RevokeGroup(gs[pick%len(gs)].Group)
	}},
}

// FuzzEdit makes one edit to an arbitrary valid policy file. The edit is
// either refused, leaving the file byte for byte as it was, or made in one
// place: apart from one line, every line of the file is still there in
// order (or, when lines are replaced or removed, every line of the result
// was there), and the file keeps its comments.
func FuzzEdit(f *testing.F) {
	for _, in := range layouts {
		f.Add([]byte(in), uint8(0), uint8(0))
	}
	f.Add([]byte("policies:\n  - identity: A\n    description: |\n      text\n      # more\n  - identity: B\n"), uint8(1), uint8(1))
	f.Add([]byte("policies:\n  - identity: A\n    description: \"one\n      # two\"  # c\n"), uint8(5), uint8(1))
	f.Add([]byte("policies:\n  -\n    # the default\n    identity: Global\n    park_timeout_seconds: &t 300\n"), uint8(2), uint8(0))
	goldens, _ := filepath.Glob("../testdata/policy_cli/*.golden")
	for i, g := range append(goldens, "../testdata/policy_cli/policies.yaml") {
		if data, err := os.ReadFile(g); err == nil && bytes.Contains(data, []byte("policies:")) {
			f.Add(data, uint8(i), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, op, pick uint8) {
		if len(src) > 4096 {
			return // the edits search lines; big files add time, not cases
		}
		d, err := ParseDocument("p.yaml", src)
		if err != nil {
			return
		}
		e := fuzzEdits[int(op)%len(fuzzEdits)]
		applies, err := e.do(d, int(pick))
		got := d.Bytes()
		switch {
		case !applies:
			return
		case err != nil:
			if !bytes.Equal(got, src) {
				t.Fatalf("%s: refused (%v) but changed the file:\n%s", e.name, err, got)
			}
			return
		}
		if _, err := Parse("p.yaml", got); err != nil {
			t.Fatalf("%s: the result does not parse: %v\n%s", e.name, err, got)
		}
		before, after := splitLines(src), splitLines(got)
		added := e.kind != removes && subsequenceButOne(before, after)
		replaced := e.kind == changes && subsequenceButOne(after, before)
		removed := e.kind == removes && subsequenceButOne(after, before)
		if !added && !replaced && !removed {
			t.Fatalf("%s: changed more than one place:\n%s\n---\n%s", e.name, src, got)
		}
		if !commentsKept(src, got, e.kind == removes) {
			t.Fatalf("%s: comments changed:\n%s\n---\n%s", e.name, src, got)
		}
	})
}

// splitLines returns the lines of b without their breaks (a final break
// does not start a line).
func splitLines(b []byte) []string {
	return strings.Split(strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
}

// subsequenceButOne reports whether a, less at most one line, is a
// subsequence of b.
func subsequenceButOne(a, b []string) bool {
	for skip := -1; skip < len(a); skip++ {
		j := 0
		for i := 0; i < len(a) && j <= len(b); i++ {
			if i == skip {
				continue
			}
			for j < len(b) && b[j] != a[i] {
				j++
			}
			j++
		}
		if j <= len(b) {
			return true
		}
	}
	return false
}

// commentsKept reports whether every comment of before is in after (for a
// removal, every comment of after was in before).
func commentsKept(before, after []byte, removal bool) bool {
	a, b := comments(before), comments(after)
	if removal {
		a, b = b, a
	}
	for _, c := range a {
		i := slices.Index(b, c)
		if i < 0 {
			return false
		}
		b = slices.Delete(b, i, i+1)
	}
	return true
}

// comments lists the comment lines yaml.v3 finds in src.
func comments(src []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return nil
	}
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for _, c := range []string{n.HeadComment, n.LineComment, n.FootComment} {
			for _, line := range strings.Split(c, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					out = append(out, line)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return out
}
