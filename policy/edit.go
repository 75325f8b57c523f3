package policy

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Document is a policy file being edited the way a Teams admin edits call
// park policies (New, Set, Remove, Grant). Each edit changes only the lines
// it must: the operator's comments, blank lines, key order and quoting stay
// as written, and entries keep their block or flow style.
//
// Every edit is checked before it is kept: the new content must pass Parse,
// the same validation the server applies, and must hold exactly the intended
// policies and grants. A failed edit leaves the document unchanged.
type Document struct {
	file string
	src  []byte
	set  *Set
}

// ParseDocument reads a policy file for editing. A file that does not pass
// Parse cannot be edited; the error is Parse's.
func ParseDocument(filename string, data []byte) (*Document, error) {
	set, err := Parse(filename, data)
	if err != nil {
		return nil, err
	}
	return &Document{file: filename, src: bytes.Clone(data), set: set}, nil
}

// Bytes returns the file content with the edits made so far.
func (d *Document) Bytes() []byte { return bytes.Clone(d.src) }

// Policies returns the policies and grants of the current content.
func (d *Document) Policies() *Set { return d.set }

// Changes are policy parameters to write; nil fields are left alone (on a
// new policy, they keep the Teams defaults).
type Changes struct {
	Description        *string
	AllowCallPark      *bool
	PickupRangeStart   *int
	PickupRangeEnd     *int
	ParkTimeoutSeconds *int
}

// IsZero reports whether c changes nothing.
func (c Changes) IsZero() bool { return c == Changes{} }

// Apply returns p with the changes made.
func (c Changes) Apply(p Policy) Policy {
	if c.Description != nil {
		p.Description = *c.Description
	}
	if c.AllowCallPark != nil {
		p.AllowCallPark = *c.AllowCallPark
	}
	if c.PickupRangeStart != nil {
		p.PickupRangeStart = *c.PickupRangeStart
	}
	if c.PickupRangeEnd != nil {
		p.PickupRangeEnd = *c.PickupRangeEnd
	}
	if c.ParkTimeoutSeconds != nil {
		p.ParkTimeoutSeconds = *c.ParkTimeoutSeconds
	}
	return p
}

// policyKeys are the keys of a policy in the order they are written.
var policyKeys = []string{"identity", "description", "allow_call_park", "pickup_range_start", "pickup_range_end", "park_timeout_seconds"}

// values returns the given fields as key/value pairs, in policyKeys order.
func (c Changes) values() []kv {
	var out []kv
	if c.Description != nil {
		out = append(out, kv{"description", *c.Description})
	}
	if c.AllowCallPark != nil {
		out = append(out, kv{"allow_call_park", *c.AllowCallPark})
	}
	if c.PickupRangeStart != nil {
		out = append(out, kv{"pickup_range_start", *c.PickupRangeStart})
	}
	if c.PickupRangeEnd != nil {
		out = append(out, kv{"pickup_range_end", *c.PickupRangeEnd})
	}
	if c.ParkTimeoutSeconds != nil {
		out = append(out, kv{"park_timeout_seconds", *c.ParkTimeoutSeconds})
	}
	return out
}

func (c Changes) has(key string) bool {
	for _, p := range c.values() {
		if p.key == key {
			return true
		}
	}
	return false
}

// validate checks p, the result of applying c; a parameter the operator did
// not give is marked with note ("the default", "unchanged") so the message
// says where its value came from.
func (c Changes) validate(p Policy, note string) error {
	fps := p.check()
	if len(fps) == 0 {
		return nil
	}
	values := map[string]int{
		"pickup_range_start":   p.PickupRangeStart,
		"pickup_range_end":     p.PickupRangeEnd,
		"park_timeout_seconds": p.ParkTimeoutSeconds,
	}
	msgs := make([]string, len(fps))
	for i, fp := range fps {
		msgs[i] = fp.msg
		if v, ok := values[fp.field]; ok && !c.has(fp.field) {
			head := fmt.Sprintf("%s %d", fp.field, v)
			if rest, ok := strings.CutPrefix(fp.msg, head); ok {
				msgs[i] = head + " (" + note + ")" + rest
			}
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// GrantedError refuses to remove a policy that users or groups are still
// granted.
type GrantedError struct {
	Policy string   // the policy's identity
	Users  []string // users granted it directly
	Groups []string // groups granted it
}

func (e *GrantedError) Error() string {
	var who []string
	for _, u := range e.Users {
		who = append(who, "user "+u)
	}
	for _, g := range e.Groups {
		who = append(who, "group "+g)
	}
	list := strings.Join(who, ", ")
	if n := len(who); n > 1 {
		list = strings.Join(who[:n-1], ", ") + " and " + who[n-1]
	}
	return fmt.Sprintf("policy %s is still granted to %s: remove those grants first", e.Policy, list)
}

// New adds a policy with the given identity. Only the identity and the
// parameters in c are written; the others take the Teams defaults when the
// file is loaded. Identities ignore case, and Global always exists.
func (d *Document) New(identity string, c Changes) error {
	if err := checkName("identity", identity, "give the policy a name"); err != nil {
		return err
	}
	if p, ok := d.set.Lookup(identity); ok {
		return fmt.Errorf("policy %s already exists (names ignore case): change it instead, or pick another name", p.Identity)
	}
	p := c.Apply(Default(identity))
	if err := c.validate(p, "the default"); err != nil {
		return err
	}
	want := modelOf(d.set)
	want.policies = append(want.policies, p)
	item := append([]kv{{"identity", identity}}, c.values()...)
	return d.change(want, func(t *yamlText) ([]byte, error) {
		return t.addItem([]string{"policies"}, item, false)
	})
}

// Set changes parameters of an existing policy. Keys the policy already has
// are rewritten in place; the others are added in the usual key order.
func (d *Document) Set(identity string, c Changes) error {
	p, ok := d.set.Lookup(identity)
	if !ok {
		return d.notFound(identity)
	}
	np := c.Apply(p)
	if err := c.validate(np, "unchanged"); err != nil {
		return err
	}
	if c.IsZero() {
		return nil
	}
	want := modelOf(d.set)
	want.replacePolicy(np)

	var steps []step
	if _, inFile := d.policyEntry(p.Identity); !inFile {
		// Global with all its defaults is not in the file: write it first.
		item := append([]kv{{"identity", p.Identity}}, c.values()...)
		steps = append(steps, func(t *yamlText) ([]byte, error) {
			return t.addItem([]string{"policies"}, item, true)
		})
	} else {
		for _, v := range c.values() {
			steps = append(steps, func(t *yamlText) ([]byte, error) {
				item, ok := t.policyItem(p.Identity)
				if !ok {
					return nil, layoutf("policy %s moved", p.Identity)
				}
				if _, has := lookup(item, v.key); has {
					return t.setValue(item, v.key, v.value)
				}
				return t.insertValue(item, v.key, v.value, predecessors(v.key)...)
			})
		}
	}
	return d.change(want, steps...)
}

// predecessors returns the policy keys written before key, nearest first.
func predecessors(key string) []string {
	var out []string
	for _, k := range policyKeys {
		if k == key {
			break
		}
		out = append([]string{k}, out...)
	}
	return out
}

// Remove deletes a policy. Global cannot be removed: removing it resets it
// to the defaults (its entry keeps only its identity and comments). A policy
// still granted to users or groups is refused with a *GrantedError.
func (d *Document) Remove(identity string) error {
	p, ok := d.set.Lookup(identity)
	if !ok {
		return d.notFound(identity)
	}
	want := modelOf(d.set)
	if p.Identity == GlobalIdentity {
		want.replacePolicy(Default(GlobalIdentity))
		item, inFile := d.policyEntry(p.Identity)
		if !inFile {
			return nil // already the defaults
		}
		var steps []step
		for i := 0; i+1 < len(item.Content); i += 2 {
			if key := item.Content[i].Value; key != "identity" {
				steps = append(steps, func(t *yamlText) ([]byte, error) {
					item, ok := t.policyItem(p.Identity)
					if !ok {
						return nil, layoutf("policy %s moved", p.Identity)
					}
					return t.deleteValue(item, key)
				})
			}
		}
		return d.change(want, steps...)
	}

	granted := &GrantedError{Policy: p.Identity}
	for _, g := range d.set.UserGrants() {
		if fold(g.Policy) == fold(p.Identity) {
			granted.Users = append(granted.Users, g.User)
		}
	}
	for _, g := range d.set.GroupGrants() {
		if fold(g.Policy) == fold(p.Identity) {
			granted.Groups = append(granted.Groups, g.Group)
		}
	}
	if len(granted.Users)+len(granted.Groups) > 0 {
		return granted
	}
	want.removePolicy(p.Identity)
	return d.change(want, func(t *yamlText) ([]byte, error) {
		m, e, i, _, ok := t.findItem([]string{"policies"}, "identity", p.Identity)
		if !ok {
			return nil, layoutf("policy %s moved", p.Identity)
		}
		return t.removeItem(m, e, i)
	})
}

// GrantUser grants user the policy identity directly, replacing the user's
// direct grant if there is one. Whether user is a configured user is for
// the caller to check (the policy file does not list users).
func (d *Document) GrantUser(user, identity string) error {
	if err := checkName("user", user, "write the user's id, e.g. ken.myer@contoso.com"); err != nil {
		return err
	}
	p, ok := d.set.Lookup(identity)
	if !ok {
		return d.notFound(identity)
	}
	want := modelOf(d.set)
	path := []string{"assignments", "users"}
	for i, g := range want.users {
		if fold(g.User) != fold(user) {
			continue
		}
		if g.Policy == p.Identity {
			return nil
		}
		want.users[i].Policy = p.Identity
		return d.change(want, func(t *yamlText) ([]byte, error) {
			_, _, _, item, ok := t.findItem(path, "user", user)
			if !ok {
				return nil, layoutf("the grant of %s moved", user)
			}
			return t.setValue(item, "policy", p.Identity)
		})
	}
	want.users = append(want.users, UserGrant{User: user, Policy: p.Identity})
	return d.change(want, func(t *yamlText) ([]byte, error) {
		return t.addItem(path, []kv{{"user", user}, {"policy", p.Identity}}, false)
	})
}

// RevokeUser removes the direct grant of user, who then gets the policy of
// its groups or Global.
func (d *Document) RevokeUser(user string) error {
	want := modelOf(d.set)
	for i, g := range want.users {
		if fold(g.User) == fold(user) {
			want.users = append(want.users[:i], want.users[i+1:]...)
			return d.change(want, d.removeGrant([]string{"assignments", "users"}, "user", user))
		}
	}
	return fmt.Errorf("user %s has no direct grant: it already gets the policy of its groups or Global", user)
}

// GrantGroup grants the members of group the policy identity at rank (1
// wins over 2), replacing the group's grant if there is one. Two groups
// cannot share a rank.
func (d *Document) GrantGroup(group, identity string, rank int) error {
	if err := checkName("group", group, "write the group name used in the users' groups"); err != nil {
		return err
	}
	p, ok := d.set.Lookup(identity)
	if !ok {
		return d.notFound(identity)
	}
	if rank < 1 {
		return fmt.Errorf("rank %d is out of range: use 1 or more (rank 1 wins over rank 2)", rank)
	}
	want := modelOf(d.set)
	existing := -1
	for i, g := range want.groups {
		switch {
		case fold(g.Group) == fold(group):
			existing = i
		case g.Rank == rank:
			return fmt.Errorf("rank %d is already used by group %s (policy %s): rank ties are not allowed, pick another rank", rank, g.Group, g.Policy)
		}
	}
	path := []string{"assignments", "groups"}
	if existing < 0 {
		want.groups = append(want.groups, GroupGrant{Group: group, Policy: p.Identity, Rank: rank})
		return d.change(want, func(t *yamlText) ([]byte, error) {
			return t.addItem(path, []kv{{"group", group}, {"policy", p.Identity}, {"rank", rank}}, false)
		})
	}
	old := want.groups[existing]
	want.groups[existing].Policy, want.groups[existing].Rank = p.Identity, rank
	var steps []step
	for _, v := range []kv{{"policy", p.Identity}, {"rank", rank}} {
		if (v.key == "policy" && old.Policy == p.Identity) || (v.key == "rank" && old.Rank == rank) {
			continue
		}
		steps = append(steps, func(t *yamlText) ([]byte, error) {
			_, _, _, item, ok := t.findItem(path, "group", group)
			if !ok {
				return nil, layoutf("the grant of %s moved", group)
			}
			return t.setValue(item, v.key, v.value)
		})
	}
	return d.change(want, steps...)
}

// RevokeGroup removes the grant of group.
func (d *Document) RevokeGroup(group string) error {
	want := modelOf(d.set)
	for i, g := range want.groups {
		if fold(g.Group) == fold(group) {
			want.groups = append(want.groups[:i], want.groups[i+1:]...)
			return d.change(want, d.removeGrant([]string{"assignments", "groups"}, "group", group))
		}
	}
	return fmt.Errorf("group %s has no grant", group)
}

func (d *Document) removeGrant(path []string, key, name string) step {
	return func(t *yamlText) ([]byte, error) {
		m, e, i, _, ok := t.findItem(path, key, name)
		if !ok {
			return nil, layoutf("the grant of %s moved", name)
		}
		return t.removeItem(m, e, i)
	}
}

func (d *Document) notFound(identity string) error {
	ids := make([]string, 0, len(d.set.Policies()))
	for _, p := range d.set.Policies() {
		ids = append(ids, p.Identity)
	}
	return fmt.Errorf("no policy named %s: the policies are %s", identity, strings.Join(ids, ", "))
}

// checkName refuses an empty name, blanks around it and control characters.
func checkName(what, s, fix string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%s is empty: %s", what, fix)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%s %q has spaces around it: remove them", what, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q has control characters: remove them", what, s)
	}
	return nil
}

// policyEntry finds the mapping of a policy in the current content; a
// Global left to its defaults has none.
func (d *Document) policyEntry(identity string) (*yaml.Node, bool) {
	t, err := parseYAMLText(d.src)
	if err != nil {
		return nil, false
	}
	return t.policyItem(identity)
}

// policyItem finds the mapping of a policy under policies.
func (t *yamlText) policyItem(identity string) (*yaml.Node, bool) {
	_, _, _, item, ok := t.findItem([]string{"policies"}, "identity", identity)
	return item, ok
}

// findItem finds, in the sequence at path, the mapping whose key equals
// name ignoring case. It returns the mapping holding the sequence, the
// sequence's entry there, the item's index and the item.
func (t *yamlText) findItem(path []string, key, name string) (*yaml.Node, entry, int, *yaml.Node, bool) {
	m := t.root()
	var e entry
	for _, k := range path {
		var ok bool
		if e, ok = lookup(m, k); !ok {
			return nil, entry{}, 0, nil, false
		}
		if k != path[len(path)-1] {
			m = resolve(e.value)
		}
	}
	seq := resolve(e.value)
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil, entry{}, 0, nil, false
	}
	for i, it := range seq.Content {
		it = resolve(it)
		if v, ok := lookup(it, key); ok && fold(resolve(v.value).Value) == fold(name) {
			return m, e, i, it, true
		}
	}
	return nil, entry{}, 0, nil, false
}

// step makes one change to a freshly parsed source.
type step func(t *yamlText) ([]byte, error)

// change runs steps one after another, each on a fresh parse of the result
// of the previous one, then keeps the result only when it passes Parse and
// holds exactly want.
func (d *Document) change(want model, steps ...step) error {
	src := d.src
	for _, s := range steps {
		t, err := parseYAMLText(src)
		if err == nil {
			src, err = s(t)
		}
		if err != nil {
			return d.cannot(err)
		}
	}
	set, err := Parse(d.file, src)
	if err != nil {
		// The lines are those of content that was not written: drop them.
		var ps Problems
		if errors.As(err, &ps) {
			out := make(Problems, len(ps))
			for i, p := range ps {
				out[i] = Problem{Msg: p.Msg}
			}
			return out
		}
		return err
	}
	if !modelOf(set).equal(want) {
		return d.cannot(layoutf("the result would differ in other places"))
	}
	d.src, d.set = src, set
	return nil
}

func (d *Document) cannot(err error) error {
	var le *layoutError
	if errors.As(err, &le) {
		return fmt.Errorf("cannot make this change to %s automatically (%s): make it by hand", d.file, le.detail)
	}
	return fmt.Errorf("cannot make this change to %s: %v", d.file, err)
}

// model is what a policy file means: its policies and grants, in a
// canonical order.
type model struct {
	policies []Policy
	users    []UserGrant
	groups   []GroupGrant
}

func modelOf(s *Set) model {
	m := model{policies: s.Policies(), users: s.UserGrants(), groups: s.GroupGrants()}
	for i := range m.users {
		m.users[i].Line = 0
	}
	for i := range m.groups {
		m.groups[i].Line = 0
	}
	return m
}

func (m *model) replacePolicy(p Policy) {
	for i := range m.policies {
		if fold(m.policies[i].Identity) == fold(p.Identity) {
			m.policies[i] = p
		}
	}
}

func (m *model) removePolicy(identity string) {
	for i := range m.policies {
		if fold(m.policies[i].Identity) == fold(identity) {
			m.policies = append(m.policies[:i], m.policies[i+1:]...)
			return
		}
	}
}

func (m model) equal(o model) bool {
	a, b := m.sorted(), o.sorted()
	if len(a.policies) != len(b.policies) || len(a.users) != len(b.users) || len(a.groups) != len(b.groups) {
		return false
	}
	for i := range a.policies {
		if a.policies[i] != b.policies[i] {
			return false
		}
	}
	for i := range a.users {
		if a.users[i] != b.users[i] {
			return false
		}
	}
	for i := range a.groups {
		if a.groups[i] != b.groups[i] {
			return false
		}
	}
	return true
}

func (m model) sorted() model {
	out := model{
		policies: append([]Policy(nil), m.policies...),
		users:    append([]UserGrant(nil), m.users...),
		groups:   append([]GroupGrant(nil), m.groups...),
	}
	sort.Slice(out.policies, func(i, j int) bool { return fold(out.policies[i].Identity) < fold(out.policies[j].Identity) })
	sort.Slice(out.users, func(i, j int) bool { return fold(out.users[i].User) < fold(out.users[j].User) })
	sort.Slice(out.groups, func(i, j int) bool { return fold(out.groups[i].Group) < fold(out.groups[j].Group) })
	return out
}
