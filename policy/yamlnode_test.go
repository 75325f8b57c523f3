package policy

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type sample struct {
	Name  string   `yaml:"name" check:"required"`
	Count int      `yaml:"count"`
	On    bool     `yaml:"on"`
	Tags  []string `yaml:"tags"`
	Note  string   // no tag: not a key
}

func decodeSample(data string) (sample, Keys, Problems) {
	var s sample
	d := &NodeDecoder{File: "f.yaml"}
	k := d.Decode(d.Document([]byte(data)), "sample", &s)
	return s, k, d.Problems
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		data string
		want sample
		errs []string // "line: message part"
	}{
		{"all kinds", "name: x\ncount: 3\non: true\ntags: [a, b]\n", sample{Name: "x", Count: 3, On: true, Tags: []string{"a", "b"}}, nil},
		{"block list and yes", "name: x\non: yes\ntags:\n  - a\n", sample{Name: "x", On: true, Tags: []string{"a"}}, nil},
		{"string keeps digits as written", "name: 0123\n", sample{Name: "0123"}, nil},
		{"a tag does not change a string", "name: !!binary eA==\n", sample{Name: "eA=="}, nil},
		{"null string and list", "name:\ntags:\n", sample{}, nil},
		{"anchors", "tags: &t [a]\nname: *t\n", sample{Tags: []string{"a"}}, []string{"1: name must be a single value, not a list"}},
		{"unknown key, typo", "name: x\ncuont: 3\n", sample{Name: "x"}, []string{`2: unknown key "cuont" in sample: did you mean count? Valid keys: name, count, on, tags`}},
		{"unknown key, no match", "name: x\nzzzzzz: 3\n", sample{Name: "x"}, []string{`2: unknown key "zzzzzz" in sample: remove it or use one of name, count, on, tags`}},
		{"a field without a tag is no key", "name: x\nnote: y\n", sample{Name: "x"}, []string{`2: unknown key "note" in sample: did you mean name?`}},
		{"merge keys are not followed", "name: x\n<<: {count: 1}\n", sample{Name: "x"}, []string{`2: unknown key "<<" in sample`}},
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
		{"list entry", "name: x\ntags: [a, [b], c]\n", sample{Name: "x", Tags: []string{"a", "c"}}, []string{"2: tags entry must be a single value, not a list"}},
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
	_, k, _ := decodeSample("\n\nname: x\ncount: zz\ntags: [a, [b], c]\n")
	tests := []struct {
		key      string
		line     int
		has, bad bool
	}{
		{"name", 3, true, false},
		{"count", 4, true, true},
		{"on", 3, false, false}, // absent: the mapping's own line
		{"tags", 5, true, true}, // one entry is bad
	}
	for _, tt := range tests {
		if k.Line(tt.key) != tt.line || k.Has(tt.key) != tt.has || k.Bad(tt.key) != tt.bad {
			t.Errorf("%s: Line %d Has %v Bad %v, want %d %v %v", tt.key, k.Line(tt.key), k.Has(tt.key), k.Bad(tt.key), tt.line, tt.has, tt.bad)
		}
	}
	if k.Start() != 3 || k.Entry("tags", 1).Start() != 5 || k.Entry("tags", 2).Start() != 0 {
		t.Errorf("Start %d, entries at %d and %d", k.Start(), k.Entry("tags", 1).Start(), k.Entry("tags", 2).Start())
	}
	var zero Keys
	if zero.Line("x") != 0 || zero.Has("x") || zero.Bad("x") || zero.Section("x").Start() != 0 || zero.Entry("x", 0).Start() != 0 {
		t.Error("zero Keys is not empty")
	}
}

// port is a TextUnmarshaler value: its error is the problem's message.
type port int

func (p *port) UnmarshalText(b []byte) error {
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1–65535", b)
	}
	*p = port(n)
	return nil
}

type item struct {
	ID   string `yaml:"id" check:"required"`
	Size int    `yaml:"size"`
	Line int    `yaml:"-"`
}

// UnmarshalYAML gives entries a default size, as Policy gives the Teams
// defaults.
func (it *item) UnmarshalYAML(n *yaml.Node) error {
	type plain item
	v := plain{Size: 7}
	if err := n.Decode(&v); err != nil {
		return err
	}
	*it = item(v)
	return nil
}

type nested struct {
	Server struct {
		Host  string `yaml:"host"`
		Ports []port `yaml:"ports"`
		Port  port   `yaml:"port"`
	} `yaml:"server"`
	Items []item `yaml:"items" entry:"item"`
}

func TestDecodeNested(t *testing.T) {
	data := `server:
  host: a
  ports: [5060, 0, 5061]
  port: 70000
  hostt: b
items:
  - id: x
  -
  - just text
  - {id: y, size: 2, colour: red}
  - [z]
`
	d := &NodeDecoder{File: "f.yaml"}
	var v nested
	v.Server.Port = 1
	k := d.Decode(d.Document([]byte(data)), "the top level", &v)
	want := []string{
		`3: port "0" is not 1–65535`,
		`4: port "70000" is not 1–65535`,
		`5: unknown key "hostt" in server: did you mean host? Valid keys: host, ports, port`,
		"8: item has no id: add the id key",
		`9: item must be a mapping of key: value lines, not "just text"`,
		`10: unknown key "colour" in item: remove it or use one of id, size`,
		"11: item must be a mapping of key: value lines, not a list",
	}
	d.Problems.Sort()
	if len(d.Problems) != len(want) {
		t.Fatalf("problems:\n%v", d.Problems)
	}
	for i, w := range want {
		line, msg, _ := strings.Cut(w, ": ")
		if got := d.Problems[i]; strconv.Itoa(got.Line) != line || !strings.Contains(got.Msg, msg) {
			t.Errorf("problem %d = %q, want %s", i, got.Error(), w)
		}
	}
	if v.Server.Host != "a" || len(v.Server.Ports) != 2 || v.Server.Ports[1] != 5061 || v.Server.Port != 1 {
		t.Errorf("server = %+v (a bad port keeps the default)", v.Server)
	}
	wantItems := []item{{ID: "x", Size: 7}, {Size: 7}, {ID: "y", Size: 2}}
	if len(v.Items) != len(wantItems) {
		t.Fatalf("items = %+v", v.Items)
	}
	for i, w := range wantItems {
		if v.Items[i] != w {
			t.Errorf("item %d = %+v, want %+v", i, v.Items[i], w)
		}
	}
	s := k.Section("server")
	if s.Start() != 2 || s.Line("port") != 4 || !s.Bad("port") || !s.Bad("ports") || s.Entry("ports", 1).Start() != 3 {
		t.Errorf("server keys: start %d, port at %d bad %v", s.Start(), s.Line("port"), s.Bad("port"))
	}
	// Entries are those decoded: the null one is an empty mapping, the text
	// and the list are left out.
	if k.Entry("items", 0).Line("id") != 7 || k.Entry("items", 1).Start() != 8 || !k.Entry("items", 1).Bad("id") || k.Entry("items", 2).Line("size") != 10 {
		t.Errorf("item keys wrong")
	}
}

// The decoder works on a tree an editor changed in place, so a file can be
// checked before it is written back.
func TestDecodeEditedTree(t *testing.T) {
	d := &NodeDecoder{File: "f.yaml"}
	doc := d.Document([]byte("# keep me\nname: x # and me\ncount: 1\n"))
	doc.Content[0].Content[3].Value = "oops"
	var s sample
	d.Decode(doc, "sample", &s)
	if len(d.Problems) != 1 || d.Problems[0].Line != 3 || s.Name != "x" || s.Count != 0 {
		t.Fatalf("problems = %v, decoded %+v", d.Problems, s)
	}
	out, err := yaml.Marshal(doc)
	if err != nil || !strings.Contains(string(out), "# keep me") || !strings.Contains(string(out), "# and me") {
		t.Errorf("comments lost: %q, %v", out, err)
	}
}

func TestAliasBeforeAnchor(t *testing.T) {
	d := &NodeDecoder{}
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
