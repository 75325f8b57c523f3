package policy

import (
	"os"

	"gopkg.in/yaml.v3"
)

// Load reads and validates the policy file at path.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: "cannot read the policy file (" + err.Error() + "): create it or fix the path"}}
	}
	return Parse(path, data)
}

// Parse validates a policy file's content; filename is used in problems. The
// error, a Problems, lists every problem with its line.
func Parse(filename string, data []byte) (*Set, error) {
	d := &NodeDecoder{File: filename}
	set := DecodeNode(d, d.Document(data))
	d.Problems.Sort()
	if err := d.Problems.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// file is a policy file as written, the struct yaml.v3 decodes it into.
type file struct {
	Policies    []Policy    `yaml:"policies" entry:"policy"`
	Assignments assignments `yaml:"assignments"`
}

type assignments struct {
	Users  []UserGrant  `yaml:"users" entry:"user grant"`
	Groups []GroupGrant `yaml:"groups" entry:"group grant"`
}

// DecodeNode decodes and validates a parsed policy file (the node Document
// returns, or its root mapping), recording problems in d. It returns nil when
// d holds any problem, so that an edited node tree can be checked with the
// same rules before it is written.
func DecodeNode(d *NodeDecoder, doc *yaml.Node) *Set {
	var f file
	k := d.Decode(doc, "the top level", &f)
	a := k.Section("assignments")
	users, groups := f.Assignments.Users, f.Assignments.Groups
	for i := range users {
		users[i].Line = a.Entry("users", i).Start()
	}
	for i := range groups {
		groups[i].Line = a.Entry("groups", i).Start()
	}
	keys := func(at where, i int) Keys {
		switch at {
		case atPolicy:
			return k.Entry("policies", i)
		case atUserGrant:
			return a.Entry("users", i)
		}
		return a.Entry("groups", i)
	}

	set, issues := build(f.Policies, users, groups)
	for _, is := range issues {
		ek := keys(is.at, is.index)
		// A value that already failed to decode holds a default: do not
		// report the default as well.
		if ek.Bad(is.field) || (is.field == "pickup_range_end" && ek.Bad("pickup_range_start")) {
			continue
		}
		otherLine := 0
		if is.other >= 0 {
			otherLine = keys(is.at, is.other).Line(is.field)
		}
		d.Addf(ek.Line(is.field), "%s", is.render(otherLine))
	}
	if len(d.Problems) > 0 {
		return nil
	}
	return set
}
