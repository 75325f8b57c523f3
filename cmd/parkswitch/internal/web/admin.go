package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/parkswitch/parkswitch/policy"
)

// The /admin pages mirror the Teams admin center's Voice > Call park
// policies: Manage policies (list, Add, Edit, Delete), Group policy
// assignment (ranked group grants) and the users' direct grants. Every
// edit goes to Policies, which edits the policy file as `parkswitch
// policy` does and applies it at once; a refusal is shown next to the
// field it is about, with what was typed kept.

// Policies are the call park policies in force and the edits of the
// policy file. Each edit returns the line that says what it did, or an
// error whose text says what to fix.
type Policies interface {
	Current() *policy.Set // in force now
	Users() []PolicyUser  // the configured users
	Refused() error       // why the policy file on disk is not in force, or nil
	New(identity string, c policy.Changes) (string, error)
	Set(identity string, c policy.Changes) (string, error)
	Remove(identity string) (string, error)
	GrantGroup(group, identity string, rank int) (string, error)
	RevokeGroup(group string) (string, error)
	GrantUser(user, identity string) (string, error)
	RevokeUser(user string) (string, error)
}

// PolicyUser is a configured user, for the grants.
type PolicyUser struct {
	ID     string // address of record: what a grant names
	Label  string // "Bob Sales (1002)"
	Groups []string
}

func (s *Site) adminRoutes(mux *http.ServeMux) {
	mux.Handle("GET /admin", http.RedirectHandler("/admin/policies", http.StatusSeeOther))
	mux.Handle("GET /admin/{$}", http.RedirectHandler("/admin/policies", http.StatusSeeOther))
	mux.Handle("GET /admin/policies", s.guard(access{}, s.policiesPage))
	mux.Handle("GET /admin/policies/new", s.guard(access{admin: true}, s.policyNewPage))
	mux.Handle("POST /admin/policies/new", s.guard(access{admin: true}, s.policySave))
	mux.Handle("GET /admin/policies/edit", s.guard(access{admin: true}, s.policyEditPage))
	mux.Handle("POST /admin/policies/edit", s.guard(access{admin: true}, s.policySave))
	mux.Handle("POST /admin/policies/delete", s.guard(access{admin: true}, s.policyDelete))
	mux.Handle("GET /admin/groups", s.guard(access{}, s.groupsPage))
	mux.Handle("POST /admin/groups/add", s.guard(access{admin: true}, s.groupAdd))
	mux.Handle("POST /admin/groups/remove", s.guard(access{admin: true}, s.groupRemove))
	mux.Handle("GET /admin/users", s.guard(access{}, s.usersPage))
	mux.Handle("POST /admin/users/grant", s.guard(access{admin: true}, s.userGrant))
	mux.Handle("POST /admin/users/revoke", s.guard(access{admin: true}, s.userRevoke))
}

// adminData is what every admin page has.
type adminData struct {
	Tab     string // policies, groups, users
	Admin   bool
	Refused string // the policy file on disk, refused
}

func (s *Site) adminData(v *visit, tab string) adminData {
	d := adminData{Tab: tab, Admin: v.acct.Role == RoleAdmin}
	if err := s.opts.Policies.Refused(); err != nil {
		d.Refused = err.Error()
	}
	return d
}

// done reports a successful edit on the next page.
func (s *Site) done(w http.ResponseWriter, r *http.Request, v *visit, msg, to string) {
	s.log.Info().Str("user", v.acct.Name).Str("edit", msg).Msg("policy file edited")
	s.sessions.setFlash(v.sess, flash{Text: sentence(msg) + " It is in force now."})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// refusedField is the form field an edit's refusal is about, "" for the
// form as a whole.
func refusedField(err error) string {
	if f := policy.FieldOf(err); f != "" {
		return f
	}
	if strings.Contains(err.Error(), "pickup range") {
		return "pickup_range_start"
	}
	return ""
}

// --- Manage policies

type policiesData struct {
	adminData
	Policies []policy.Policy
	RowError map[string]string // by identity: a refused delete
}

func (s *Site) policiesPage(w http.ResponseWriter, r *http.Request, v *visit) {
	s.renderPolicies(w, v, http.StatusOK, nil)
}

func (s *Site) renderPolicies(w http.ResponseWriter, v *visit, status int, rowError map[string]string) {
	d := policiesData{adminData: s.adminData(v, "policies"), Policies: s.opts.Policies.Current().Policies(), RowError: rowError}
	s.render(w, status, "policies", s.newPage(v, "Call park policies", "admin", d))
}

// policyValues is the Add or Edit form as typed.
type policyValues struct {
	Identity           string
	Description        string
	AllowCallPark      bool
	PickupRangeStart   string
	PickupRangeEnd     string
	ParkTimeoutSeconds string
}

func valuesOf(p policy.Policy) policyValues {
	return policyValues{Identity: p.Identity, Description: p.Description, AllowCallPark: p.AllowCallPark,
		PickupRangeStart: strconv.Itoa(p.PickupRangeStart), PickupRangeEnd: strconv.Itoa(p.PickupRangeEnd),
		ParkTimeoutSeconds: strconv.Itoa(p.ParkTimeoutSeconds)}
}

type policyForm struct {
	adminData
	New       bool
	Values    policyValues
	Errors    map[string]string // by field (the policy file's key)
	FormError string
}

func (s *Site) policyNewPage(w http.ResponseWriter, r *http.Request, v *visit) {
	f := policyForm{adminData: s.adminData(v, "policies"), New: true, Values: valuesOf(policy.Default(""))}
	s.render(w, http.StatusOK, "policy", s.newPage(v, "Add call park policy", "admin", f))
}

func (s *Site) policyEditPage(w http.ResponseWriter, r *http.Request, v *visit) {
	p, ok := s.opts.Policies.Current().Lookup(r.URL.Query().Get("identity"))
	if !ok {
		s.message(w, r, http.StatusNotFound, "No such policy", "There is no call park policy named "+r.URL.Query().Get("identity")+".")
		return
	}
	f := policyForm{adminData: s.adminData(v, "policies"), Values: valuesOf(p)}
	s.render(w, http.StatusOK, "policy", s.newPage(v, "Edit "+p.Identity, "admin", f))
}

// parsePolicyForm reads the form onto base (the Teams defaults for Add,
// the policy for Edit); errs holds the fields that are not numbers.
func parsePolicyForm(form url.Values, base policy.Policy) (policyValues, policy.Policy, map[string]string) {
	vals := policyValues{
		Identity: strings.TrimSpace(form.Get("identity")), Description: form.Get("description"),
		AllowCallPark:    form.Get("allow_call_park") == "on",
		PickupRangeStart: strings.TrimSpace(form.Get("pickup_range_start")), PickupRangeEnd: strings.TrimSpace(form.Get("pickup_range_end")),
		ParkTimeoutSeconds: strings.TrimSpace(form.Get("park_timeout_seconds")),
	}
	errs := map[string]string{}
	p := base
	p.Description, p.AllowCallPark = vals.Description, vals.AllowCallPark
	for _, f := range []struct {
		key string
		in  string
		out *int
	}{
		{"pickup_range_start", vals.PickupRangeStart, &p.PickupRangeStart},
		{"pickup_range_end", vals.PickupRangeEnd, &p.PickupRangeEnd},
		{"park_timeout_seconds", vals.ParkTimeoutSeconds, &p.ParkTimeoutSeconds},
	} {
		n, err := strconv.Atoi(f.in)
		if err != nil {
			errs[f.key] = "Enter a whole number."
			continue
		}
		*f.out = n
	}
	return vals, p, errs
}

// changesOf are the parameters of p that differ from old; with all set,
// allow_call_park is written whatever its value.
func changesOf(p, old policy.Policy, all bool) policy.Changes {
	var c policy.Changes
	if p.Description != old.Description {
		c.Description = &p.Description
	}
	if p.AllowCallPark != old.AllowCallPark || all {
		c.AllowCallPark = &p.AllowCallPark
	}
	if p.PickupRangeStart != old.PickupRangeStart {
		c.PickupRangeStart = &p.PickupRangeStart
	}
	if p.PickupRangeEnd != old.PickupRangeEnd {
		c.PickupRangeEnd = &p.PickupRangeEnd
	}
	if p.ParkTimeoutSeconds != old.ParkTimeoutSeconds {
		c.ParkTimeoutSeconds = &p.ParkTimeoutSeconds
	}
	return c
}

// policySave adds a policy (POST …/new) or changes one (POST …/edit).
func (s *Site) policySave(w http.ResponseWriter, r *http.Request, v *visit) {
	isNew := strings.HasSuffix(r.URL.Path, "/new")
	base := policy.Default(strings.TrimSpace(r.PostForm.Get("identity")))
	if !isNew {
		cur, ok := s.opts.Policies.Current().Lookup(r.PostForm.Get("identity"))
		if !ok {
			s.message(w, r, http.StatusNotFound, "No such policy", "There is no call park policy named "+r.PostForm.Get("identity")+" any more.")
			return
		}
		base = cur
	}
	vals, p, errs := parsePolicyForm(r.PostForm, base)
	if !isNew {
		vals.Identity = base.Identity // Name cannot be changed, as in Teams
	}
	f := policyForm{adminData: s.adminData(v, "policies"), New: isNew, Values: vals, Errors: errs}
	if len(errs) == 0 {
		for k, msg := range p.FieldErrors() {
			errs[k] = sentence(msg)
		}
	}
	if len(errs) == 0 {
		var msg string
		var err error
		if isNew {
			msg, err = s.opts.Policies.New(vals.Identity, changesOf(p, policy.Default(vals.Identity), true))
		} else {
			msg, err = s.opts.Policies.Set(base.Identity, changesOf(p, base, false))
		}
		if err == nil {
			s.done(w, r, v, msg, "/admin/policies")
			return
		}
		if k := refusedField(err); k != "" {
			errs[k] = sentence(err.Error())
		} else {
			f.FormError = sentence(err.Error())
		}
	}
	title := "Edit " + base.Identity
	if isNew {
		title = "Add call park policy"
	}
	s.render(w, http.StatusUnprocessableEntity, "policy", s.newPage(v, title, "admin", f))
}

func (s *Site) policyDelete(w http.ResponseWriter, r *http.Request, v *visit) {
	identity := r.PostForm.Get("identity")
	msg, err := s.opts.Policies.Remove(identity)
	if err != nil {
		s.renderPolicies(w, v, http.StatusConflict, map[string]string{strings.ToLower(identity): sentence(err.Error())})
		return
	}
	s.done(w, r, v, msg, "/admin/policies")
}

// --- Group policy assignment

type groupValues struct{ Group, Rank, Policy string }

type groupsData struct {
	adminData
	Grants    []policy.GroupGrant // by rank
	Policies  []policy.Policy
	Known     []string // groups of configured users
	Values    groupValues
	Errors    map[string]string // group, rank, policy
	FormError string
	RowError  map[string]string // by group
}

func (s *Site) groupsPage(w http.ResponseWriter, r *http.Request, v *visit) {
	s.renderGroupGrants(w, v, http.StatusOK, groupValues{}, nil, "", nil)
}

func (s *Site) renderGroupGrants(w http.ResponseWriter, v *visit, status int, vals groupValues, errs map[string]string, formErr string, rowErr map[string]string) {
	set := s.opts.Policies.Current()
	grants := append([]policy.GroupGrant(nil), set.GroupGrants()...)
	slices.SortStableFunc(grants, func(a, b policy.GroupGrant) int { return a.Rank - b.Rank })
	known := map[string]bool{}
	for _, u := range s.opts.Policies.Users() {
		for _, g := range u.Groups {
			known[g] = true
		}
	}
	d := groupsData{adminData: s.adminData(v, "groups"), Grants: grants, Policies: set.Policies(), Values: vals,
		Errors: errs, FormError: formErr, RowError: rowErr}
	for g := range known {
		d.Known = append(d.Known, g)
	}
	slices.Sort(d.Known)
	if d.Values.Rank == "" {
		d.Values.Rank = strconv.Itoa(nextRank(grants))
	}
	s.render(w, status, "groups", s.newPage(v, "Group policy assignment", "admin", d))
}

// nextRank is one below the last rank: where a new group goes by default.
func nextRank(grants []policy.GroupGrant) int {
	r := 0
	for _, g := range grants {
		r = max(r, g.Rank)
	}
	return r + 1
}

func (s *Site) groupAdd(w http.ResponseWriter, r *http.Request, v *visit) {
	vals := groupValues{Group: strings.TrimSpace(r.PostForm.Get("group")), Rank: strings.TrimSpace(r.PostForm.Get("rank")), Policy: r.PostForm.Get("policy")}
	errs := map[string]string{}
	rank, err := strconv.Atoi(vals.Rank)
	if err != nil {
		errs["rank"] = "Enter a whole number: 1 is the highest rank."
	}
	if vals.Group == "" {
		errs["group"] = "Name the group, as the users' groups spell it."
	}
	if vals.Policy == "" {
		errs["policy"] = "Choose a policy."
	}
	if len(errs) == 0 {
		msg, err := s.opts.Policies.GrantGroup(vals.Group, vals.Policy, rank)
		if err == nil {
			s.done(w, r, v, msg, "/admin/groups")
			return
		}
		s.renderGroupGrants(w, v, http.StatusUnprocessableEntity, vals, map[string]string{grantField(err.Error()): sentence(err.Error())}, "", nil)
		return
	}
	s.renderGroupGrants(w, v, http.StatusUnprocessableEntity, vals, errs, "", nil)
}

// grantField is the field of a grant form a refusal is about.
func grantField(msg string) string {
	switch {
	case strings.HasPrefix(msg, "rank"):
		return "rank"
	case strings.HasPrefix(msg, "no policy"):
		return "policy"
	case strings.HasPrefix(msg, "group"):
		return "group"
	}
	return "user"
}

func (s *Site) groupRemove(w http.ResponseWriter, r *http.Request, v *visit) {
	group := r.PostForm.Get("group")
	msg, err := s.opts.Policies.RevokeGroup(group)
	if err != nil {
		s.renderGroupGrants(w, v, http.StatusConflict, groupValues{}, nil, "", map[string]string{strings.ToLower(group): sentence(err.Error())})
		return
	}
	s.done(w, r, v, msg, "/admin/groups")
}

// --- Users' grants

type userRow struct {
	ID, Label, Groups string
	Effective         string // the policy the user gets
	Via               string // "direct grant", "group staff" or "org-wide default"
	Direct            bool
}

type userValues struct{ User, Policy string }

type usersData struct {
	adminData
	Users     []userRow
	Policies  []policy.Policy
	Values    userValues
	Errors    map[string]string // user, policy
	FormError string
	RowError  map[string]string // by user id, lower case
}

func (s *Site) usersPage(w http.ResponseWriter, r *http.Request, v *visit) {
	s.renderUsers(w, v, http.StatusOK, userValues{}, nil, nil)
}

func (s *Site) renderUsers(w http.ResponseWriter, v *visit, status int, vals userValues, errs, rowErr map[string]string) {
	set := s.opts.Policies.Current()
	d := usersData{adminData: s.adminData(v, "users"), Policies: set.Policies(), Values: vals, Errors: errs, RowError: rowErr}
	for _, u := range s.opts.Policies.Users() {
		d.Users = append(d.Users, userRowOf(set, u))
	}
	s.render(w, status, "users", s.newPage(v, "Users' call park policies", "admin", d))
}

// userRowOf says which policy u gets and why (SPEC §2: a direct grant,
// else the best-ranked group, else Global).
func userRowOf(set *policy.Set, u PolicyUser) userRow {
	row := userRow{ID: u.ID, Label: u.Label, Groups: strings.Join(u.Groups, ", "), Effective: set.Resolve(u.ID, u.Groups).Identity, Via: "org-wide default"}
	for _, g := range set.UserGrants() {
		if strings.EqualFold(g.User, u.ID) {
			row.Direct, row.Via = true, "direct grant"
			return row
		}
	}
	best := 0
	for _, g := range set.GroupGrants() {
		for _, name := range u.Groups {
			if strings.EqualFold(g.Group, name) && (best == 0 || g.Rank < best) {
				best, row.Via = g.Rank, "group "+g.Group+" (rank "+strconv.Itoa(g.Rank)+")"
			}
		}
	}
	return row
}

func (s *Site) userGrant(w http.ResponseWriter, r *http.Request, v *visit) {
	vals := userValues{User: r.PostForm.Get("user"), Policy: r.PostForm.Get("policy")}
	errs := map[string]string{}
	if vals.User == "" {
		errs["user"] = "Choose a user."
	}
	if vals.Policy == "" {
		errs["policy"] = "Choose a policy."
	}
	if len(errs) == 0 {
		msg, err := s.opts.Policies.GrantUser(vals.User, vals.Policy)
		if err == nil {
			s.done(w, r, v, msg, "/admin/users")
			return
		}
		errs[grantField(err.Error())] = sentence(err.Error())
	}
	s.renderUsers(w, v, http.StatusUnprocessableEntity, vals, errs, nil)
}

func (s *Site) userRevoke(w http.ResponseWriter, r *http.Request, v *visit) {
	user := r.PostForm.Get("user")
	msg, err := s.opts.Policies.RevokeUser(user)
	if err != nil {
		s.renderUsers(w, v, http.StatusConflict, userValues{}, nil, map[string]string{strings.ToLower(user): sentence(err.Error())})
		return
	}
	s.done(w, r, v, msg, "/admin/users")
}
