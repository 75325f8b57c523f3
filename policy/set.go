package policy

import (
	"fmt"
	"strings"
)

// UserGrant assigns a policy to one user directly; it wins over group grants.
type UserGrant struct {
	User   string `yaml:"user" json:"user" check:"required"`     // user id (address of record), case-insensitive
	Policy string `yaml:"policy" json:"policy" check:"required"` // policy identity
	Line   int    `yaml:"-" json:"-"`                            // line in the policy file; 0 when not loaded from one
}

// GroupGrant assigns a policy to the members of a group. Among a user's
// groups the grant with the lowest rank wins (rank 1 is the highest).
type GroupGrant struct {
	Group  string `yaml:"group" json:"group" check:"required"` // group name, case-insensitive
	Policy string `yaml:"policy" json:"policy" check:"required"`
	Rank   int    `yaml:"rank" json:"rank" check:"required"`
	Line   int    `yaml:"-" json:"-"`
}

// Set is an immutable, validated set of policies plus assignments. It is
// safe for concurrent use; a new policy file yields a new Set.
type Set struct {
	policies []Policy
	byID     map[string]int // folded identity → index in policies
	users    []UserGrant
	byUser   map[string]int // folded user id → index in policies
	groups   []GroupGrant
	byGroup  map[string]groupRef
}

type groupRef struct {
	rank   int
	policy int // index in policies
}

// fold is the case-insensitive key of identities, user ids and group names.
func fold(s string) string { return strings.ToLower(s) }

// NewSet validates policies and grants and builds a Set. Global is added with
// the defaults when absent. The error, a Problems, lists every problem found.
func NewSet(policies []Policy, users []UserGrant, groups []GroupGrant) (*Set, error) {
	s, issues := build(policies, users, groups)
	if len(issues) == 0 {
		return s, nil
	}
	ps := make(Problems, len(issues))
	for i, is := range issues {
		var ctx string
		switch is.at {
		case atPolicy:
			if id := policies[is.index].Identity; id != "" {
				ctx = fmt.Sprintf("policy %q", id)
			} else {
				ctx = fmt.Sprintf("policy #%d", is.index+1)
			}
		case atUserGrant:
			ctx = fmt.Sprintf("user grant %q", users[is.index].User)
		case atGroupGrant:
			ctx = fmt.Sprintf("group grant %q", groups[is.index].Group)
		}
		ps[i] = Problem{Msg: ctx + ": " + is.render(0)}
	}
	return nil, ps
}

// Policies returns every policy in file order, Global first when it was
// synthesized.
func (s *Set) Policies() []Policy {
	if s == nil {
		return []Policy{Default(GlobalIdentity)}
	}
	return append([]Policy(nil), s.policies...)
}

// Lookup finds a policy by identity, ignoring case.
func (s *Set) Lookup(identity string) (Policy, bool) {
	if s == nil {
		if fold(identity) == fold(GlobalIdentity) {
			return Default(GlobalIdentity), true
		}
		return Policy{}, false
	}
	i, ok := s.byID[fold(identity)]
	if !ok {
		return Policy{}, false
	}
	return s.policies[i], true
}

// Resolve returns the effective policy of user, a member of groups: a direct
// user grant wins; else the group grant with the lowest rank among groups;
// else Global. User ids and group names are compared ignoring case. A nil Set
// resolves everyone to the default Global.
func (s *Set) Resolve(user string, groups []string) Policy {
	if s == nil {
		return Default(GlobalIdentity)
	}
	if i, ok := s.byUser[fold(user)]; ok {
		return s.policies[i]
	}
	best := groupRef{policy: -1}
	for _, g := range groups {
		if ref, ok := s.byGroup[fold(g)]; ok && (best.policy < 0 || ref.rank < best.rank) {
			best = ref
		}
	}
	if best.policy >= 0 {
		return s.policies[best.policy]
	}
	return s.policies[s.byID[fold(GlobalIdentity)]]
}

// UserGrants returns the direct user grants in file order.
func (s *Set) UserGrants() []UserGrant {
	if s == nil {
		return nil
	}
	return append([]UserGrant(nil), s.users...)
}

// GroupGrants returns the group grants in file order.
func (s *Set) GroupGrants() []GroupGrant {
	if s == nil {
		return nil
	}
	return append([]GroupGrant(nil), s.groups...)
}

// issue is a problem found by build, located by the entry and field it
// concerns so that Parse can point at a line and NewSet can name the entry.
type issue struct {
	at    where
	index int    // entry index in its input slice
	field string // YAML key of the offending value
	head  string // what is wrong
	other int    // index of the clashing entry of the same kind, or -1
	fix   string // what to do; empty when head says it all
}

type where int

const (
	atPolicy where = iota
	atUserGrant
	atGroupGrant
)

// render formats the issue; otherLine, when known, points at the entry it
// clashes with.
func (is issue) render(otherLine int) string {
	msg := is.head
	if otherLine > 0 {
		msg += fmt.Sprintf(" (line %d)", otherLine)
	}
	if is.fix != "" {
		msg += ": " + is.fix
	}
	return msg
}

// build validates the input and assembles a Set; the Set is only meaningful
// when no issues are returned.
func build(policies []Policy, users []UserGrant, groups []GroupGrant) (*Set, []issue) {
	b := &builder{s: &Set{byID: map[string]int{}, byUser: map[string]int{}, byGroup: map[string]groupRef{}}}
	b.addPolicies(policies)
	b.addUsers(users)
	b.addGroups(groups)
	return b.s, b.issues
}

// builder assembles a Set, collecting the issues found on the way.
type builder struct {
	s      *Set
	issues []issue
}

func (b *builder) add(at where, index int, field string, other int, head, fix string, args ...any) {
	b.issues = append(b.issues, issue{at: at, index: index, field: field, other: other,
		head: fmt.Sprintf(head, args...), fix: fix})
}

// addPolicies adds the policies, and Global with the defaults when they do
// not name it.
func (b *builder) addPolicies(policies []Policy) {
	s := b.s
	hasGlobal := false
	for _, p := range policies {
		hasGlobal = hasGlobal || fold(p.Identity) == fold(GlobalIdentity)
	}
	if !hasGlobal {
		s.byID[fold(GlobalIdentity)] = 0
		s.policies = append(s.policies, Default(GlobalIdentity))
	}
	first := map[string]int{} // folded identity → input index
	for i, p := range policies {
		for _, fp := range p.check() {
			b.add(atPolicy, i, fp.field, -1, "%s", "", fp.msg)
		}
		k := fold(p.Identity)
		if strings.TrimSpace(k) == "" {
			continue
		}
		if j, dup := first[k]; dup {
			b.add(atPolicy, i, "identity", j, "identity %q is already used by policy %q",
				"identities ignore case, so pick another name or merge the two", p.Identity, policies[j].Identity)
			continue
		}
		first[k] = i
		if k == fold(GlobalIdentity) {
			p.Identity = GlobalIdentity // one spelling for code that compares identities
		}
		s.byID[k] = len(s.policies)
		s.policies = append(s.policies, p)
	}
}

// known lists the identities a grant may name.
func (b *builder) known() string {
	ids := make([]string, len(b.s.policies))
	for i, p := range b.s.policies {
		ids[i] = p.Identity
	}
	return strings.Join(ids, ", ")
}

// policyOf finds the policy a grant names.
func (b *builder) policyOf(at where, i int, identity string) (int, bool) {
	if identity == "" {
		b.add(at, i, "policy", -1, "policy is empty", "name one of "+b.known())
		return 0, false
	}
	pi, ok := b.s.byID[fold(identity)]
	if !ok {
		b.add(at, i, "policy", -1, "policy %q does not exist", "use one of "+b.known()+" or add it under policies", identity)
	}
	return pi, ok
}

func (b *builder) addUsers(users []UserGrant) {
	first := map[string]int{}
	for i, g := range users {
		pi, ok := b.policyOf(atUserGrant, i, g.Policy)
		k := fold(g.User)
		switch j, dup := first[k]; {
		case strings.TrimSpace(k) == "":
			b.add(atUserGrant, i, "user", -1, "user is empty", "write the user's id, e.g. ken.myer@contoso.com")
		case dup:
			b.add(atUserGrant, i, "user", j, "user %q is already granted policy %q",
				"a user has one direct grant: keep one of them", g.User, users[j].Policy)
		default:
			first[k] = i
			if ok {
				b.s.byUser[k] = pi
			}
		}
		b.s.users = append(b.s.users, g)
	}
}

func (b *builder) addGroups(groups []GroupGrant) {
	first := map[string]int{}
	firstRank := map[int]int{}
	for i, g := range groups {
		pi, ok := b.policyOf(atGroupGrant, i, g.Policy)
		k := fold(g.Group)
		switch j, dup := first[k]; {
		case strings.TrimSpace(k) == "":
			b.add(atGroupGrant, i, "group", -1, "group is empty", "write the group name used in the users' groups")
			ok = false
		case dup:
			b.add(atGroupGrant, i, "group", j, "group %q is already granted policy %q",
				"a group has one grant: keep one of them", g.Group, groups[j].Policy)
			ok = false
		default:
			first[k] = i
		}
		switch j, tie := firstRank[g.Rank]; {
		case g.Rank < 1:
			b.add(atGroupGrant, i, "rank", -1, "rank %d is out of range", "use 1 or more (rank 1 wins over rank 2)", g.Rank)
			ok = false
		case tie:
			b.add(atGroupGrant, i, "rank", j, "rank %d is also used by group %q",
				"rank ties are not allowed: give each group grant its own rank", g.Rank, groups[j].Group)
		default:
			firstRank[g.Rank] = i
		}
		if ok {
			b.s.byGroup[k] = groupRef{rank: g.Rank, policy: pi}
		}
		b.s.groups = append(b.s.groups, g)
	}
}
