package policy

import (
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type sample struct {
	Name  string
	Count int
	On    bool
	Tags  []string
}

func decodeSample(data string) (sample, Keys, Problems) {
	var s sample
	d := &NodeDecoder{File: "f.yaml"}
	k := d.Mapping(d.Document([]byte(data)), "sample",
		StringField("name", &s.Name).Require(),
		IntField("count", &s.Count),
		BoolField("on", &s.On),
		StringsField("tags", &s.Tags),
	)
	return s, k, d.Problems
}

func TestNodeDecoder(t *testing.T) {
	tests := []struct {
		name string
		data string
		want sample
		errs []string // "line: message part"
	}{
		{"all kinds", "name: x\ncount: 3\non: true\ntags: [a, b]\n", sample{"x", 3, true, []string{"a", "b"}}, nil},
		{"block list and yes", "name: x\non: yes\ntags:\n  - a\n", sample{Name: "x", On: true, Tags: []string{"a"}}, nil},
		{"string keeps digits as written", "name: 0123\n", sample{Name: "0123"}, nil},
		{"null string and list", "name:\ntags:\n", sample{}, nil},
		{"anchors", "tags: &t [a]\nname: *t\n", sample{Tags: []string{"a"}}, []string{"1: name must be a single value, not a list"}},
		{"unknown key, typo", "name: x\ncuont: 3\n", sample{Name: "x"}, []string{`2: unknown key "cuont" in sample: did you mean count? Valid keys: name, count, on, tags`}},
		{"unknown key, no match", "name: x\nzzzzzz: 3\n", sample{Name: "x"}, []string{`2: unknown key "zzzzzz" in sample: remove it or use one of name, count, on, tags`}},
		{"repeated key keeps the first", "name: x\nname: y\n", sample{Name: "x"}, []string{"2: name is given twice in sample (first at line 1): keep only one"}},
		{"missing required", "count: 1\n", sample{Count: 1}, []string{"1: sample has no name: add the name key"}},
		{"empty document", "", sample{}, []string{"0: sample has no name"}},
		{"not a mapping", "- a\n", sample{}, []string{"1: sample must be a mapping of key: value lines, not a list"}},
		{"int types", "name: x\ncount: 1.5\n", sample{Name: "x"}, []string{`2: count must be a whole number, not "1.5"`}},
		{"int exponent", "name: x\ncount: 1e3\n", sample{Name: "x"}, []string{`2: count must be a whole number, not "1e3"`}},
		{"int quoted", "name: x\ncount: '7'\n", sample{Name: "x"}, []string{`2: count must be a number, not the text "7": remove the quotes`}},
		{"int list", "name: x\ncount: [1]\n", sample{Name: "x"}, []string{"2: count must be a whole number, not a list"}},
		{"int null", "name: x\ncount:\n", sample{Name: "x"}, []string{"2: count has no value: write a whole number"}},
		{"int overflow", "name: x\ncount: 99999999999999999999\n", sample{Name: "x"}, []string{"2: count must be a whole number"}},
		{"bool", "name: x\non: 1\n", sample{Name: "x"}, []string{`2: on must be true or false, not "1"`}},
		{"bool mapping", "name: x\non: {a: 1}\n", sample{Name: "x"}, []string{"2: on must be true or false, not a mapping"}},
		{"list scalar", "name: x\ntags: a\n", sample{Name: "x"}, []string{`2: tags must be a list (lines starting with "- " or [a, b]), not "a"`}},
		{"list entry", "name: x\ntags: [a, [b]]\n", sample{Name: "x"}, []string{"2: tags entry must be a single value, not a list"}},
		{"complex key", "name: x\n? [a]\n: 1\n", sample{Name: "x"}, []string{"2: sample has a key that is a list: keys must be plain names"}},
		{"syntax error, scanner", "name: x\n  bad: : y\n", sample{}, []string{"2: not valid YAML (mapping values are not allowed in this context)", "0: sample has no name"}},
		{"syntax error, parser", "name: x\ntags: [a\n", sample{}, []string{"2: not valid YAML (did not find expected ',' or ']')", "0: sample has no name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, ps := decodeSample(tt.data)
			if got.Name != tt.want.Name || got.Count != tt.want.Count || got.On != tt.want.On || strings.Join(got.Tags, ",") != strings.Join(tt.want.Tags, ",") {
				t.Errorf("decoded %+v, want %+v", got, tt.want)
			}
			if len(ps) != len(tt.errs) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tt.errs), ps)
			}
			for i, want := range tt.errs {
				line, msg, _ := strings.Cut(want, ": ")
				if got := ps[i]; got.File != "f.yaml" || strconv.Itoa(got.Line) != line || !strings.Contains(got.Msg, msg) {
					t.Errorf("problem %d = %q, want line %s and %q", i, got.Error(), line, msg)
				}
			}
		})
	}
}

func TestKeys(t *testing.T) {
	_, k, _ := decodeSample("\n\nname: x\ncount: zz\n")
	tests := []struct {
		key      string
		line     int
		has, bad bool
	}{
		{"name", 3, true, false},
		{"count", 4, true, true},
		{"on", 3, false, false}, // absent: the mapping's own line
	}
	for _, tt := range tests {
		if k.Line(tt.key) != tt.line || k.Has(tt.key) != tt.has || k.Bad(tt.key) != tt.bad {
			t.Errorf("%s: Line %d Has %v Bad %v, want %d %v %v", tt.key, k.Line(tt.key), k.Has(tt.key), k.Bad(tt.key), tt.line, tt.has, tt.bad)
		}
	}
	var zero Keys
	if zero.Line("x") != 0 || zero.Has("x") || zero.Bad("x") {
		t.Error("zero Keys is not empty")
	}
}

// The decoder works on a tree an editor changed in place, so a file can be
// checked before it is written back.
func TestNodeDecoderEditedTree(t *testing.T) {
	d := &NodeDecoder{File: "f.yaml"}
	doc := d.Document([]byte("# keep me\nname: x # and me\ncount: 1\n"))
	doc.Content[0].Content[3].Value = "oops"
	var s sample
	d.Mapping(doc, "sample", StringField("name", &s.Name), IntField("count", &s.Count))
	if len(d.Problems) != 1 || d.Problems[0].Line != 3 {
		t.Fatalf("problems = %v", d.Problems)
	}
	out, err := yaml.Marshal(doc)
	if err != nil || !strings.Contains(string(out), "# keep me") || !strings.Contains(string(out), "# and me") {
		t.Errorf("comments lost: %q, %v", out, err)
	}
}

func TestSequence(t *testing.T) {
	d := &NodeDecoder{}
	var got []string
	collect := func(item *yaml.Node) { got = append(got, item.Value) }
	if !d.Sequence(d.Document([]byte("- &x a\n- *x\n")), "list", collect) || strings.Join(got, ",") != "a,a" || len(d.Problems) != 0 {
		t.Errorf("Sequence = %v, problems %v", got, d.Problems)
	}
	if !d.Sequence(nil, "list", collect) || len(got) != 2 {
		t.Error("nil is not an empty list")
	}
	if d.Document([]byte("- *x\n- &x b\n")) != nil || len(d.Problems) != 1 {
		t.Errorf("alias before its anchor: problems %v", d.Problems)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"rank", "rnak", 2}, {"kitten", "sitting", 3}, {"same", "same", 0}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
