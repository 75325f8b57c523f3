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

// DecodeNode decodes and validates a parsed policy file (the node Document
// returns, or its root mapping), recording problems in d. It returns nil when
// d holds any problem, so that an edited node tree can be checked with the
// same rules before it is written.
func DecodeNode(d *NodeDecoder, doc *yaml.Node) *Set {
	var (
		policies  []Policy
		users     []UserGrant
		groups    []GroupGrant
		polKeys   []Keys
		userKeys  []Keys
		groupKeys []Keys
	)
	d.Mapping(doc, "the top level",
		Field{Name: "policies", Decode: func(d *NodeDecoder, v *yaml.Node) bool {
			return d.Sequence(v, "policies", func(item *yaml.Node) {
				p := Default("")
				k := d.Mapping(item, "policy",
					StringField("identity", &p.Identity).Require(),
					StringField("description", &p.Description),
					BoolField("allow_call_park", &p.AllowCallPark),
					IntField("pickup_range_start", &p.PickupRangeStart),
					IntField("pickup_range_end", &p.PickupRangeEnd),
					IntField("park_timeout_seconds", &p.ParkTimeoutSeconds),
				)
				if isEntry(item) {
					policies, polKeys = append(policies, p), append(polKeys, k)
				}
			})
		}},
		Field{Name: "assignments", Decode: func(d *NodeDecoder, v *yaml.Node) bool {
			d.Mapping(v, "assignments",
				Field{Name: "users", Decode: func(d *NodeDecoder, v *yaml.Node) bool {
					return d.Sequence(v, "assignments users", func(item *yaml.Node) {
						g := UserGrant{Line: item.Line}
						k := d.Mapping(item, "user grant",
							StringField("user", &g.User).Require(),
							StringField("policy", &g.Policy).Require(),
						)
						if isEntry(item) {
							users, userKeys = append(users, g), append(userKeys, k)
						}
					})
				}},
				Field{Name: "groups", Decode: func(d *NodeDecoder, v *yaml.Node) bool {
					return d.Sequence(v, "assignments groups", func(item *yaml.Node) {
						g := GroupGrant{Line: item.Line}
						k := d.Mapping(item, "group grant",
							StringField("group", &g.Group).Require(),
							StringField("policy", &g.Policy).Require(),
							IntField("rank", &g.Rank).Require(),
						)
						if isEntry(item) {
							groups, groupKeys = append(groups, g), append(groupKeys, k)
						}
					})
				}},
			)
			return true
		}},
	)

	set, issues := build(policies, users, groups)
	for _, is := range issues {
		var k, other Keys
		switch is.at {
		case atPolicy:
			k = polKeys[is.index]
		case atUserGrant:
			k = userKeys[is.index]
		case atGroupGrant:
			k = groupKeys[is.index]
		}
		// A value that already failed to decode holds a default: do not
		// report the default as well.
		if k.Bad(is.field) || (is.field == "pickup_range_end" && k.Bad("pickup_range_start")) {
			continue
		}
		otherLine := 0
		if is.other >= 0 {
			switch is.at {
			case atPolicy:
				other = polKeys[is.other]
			case atUserGrant:
				other = userKeys[is.other]
			case atGroupGrant:
				other = groupKeys[is.other]
			}
			otherLine = other.Line(is.field)
		}
		d.Addf(k.Line(is.field), "%s", is.render(otherLine))
	}
	if len(d.Problems) > 0 {
		return nil
	}
	return set
}

// isEntry reports whether a list item decoded as a mapping (null is an empty
// one); other items were reported and are left out of further checks.
func isEntry(item *yaml.Node) bool {
	return item.Kind == yaml.MappingNode || isNull(item)
}
