package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/policy"
)

// The policy commands mirror the Teams cmdlets New-, Set-, Get-, Remove- and
// Grant-CsTeamsCallParkPolicy. Edits go through policy.Document, so the
// operator's comments, blank lines and key order survive; the result is
// validated like a reload (policy rules, then the rules against the main
// configuration) and written atomically. Any failure leaves the file as it
// was, exits 1 and prints one line saying what to fix; usage mistakes exit 2.

var policyUsages = map[string]string{
	"new":    "parkswitch policy new    <identity> [--allow-call-park] [--pickup-range-start N] [--pickup-range-end N] [--park-timeout-seconds N] [--description S] [--config FILE]",
	"set":    "parkswitch policy set    <identity> [--allow-call-park=true|false] [--pickup-range-start N] [--pickup-range-end N] [--park-timeout-seconds N] [--description S] [--config FILE]",
	"get":    "parkswitch policy get    [<identity>] [--output table|yaml|json] [--config FILE]",
	"remove": "parkswitch policy remove <identity> [--config FILE]",
	"grant": "parkswitch policy grant  <identity> --user <id> | --group <name> --rank N [--config FILE]\n" +
		"       parkswitch policy grant  --user <id> | --group <name> --remove [--config FILE]",
}

var policyCommands = []string{"new", "set", "get", "remove", "grant"}

func policyUsage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	for _, c := range policyCommands {
		fmt.Fprintln(w, "  "+strings.ReplaceAll(policyUsages[c], "\n       ", "\n  "))
	}
	fmt.Fprint(w, `
Policies live in the policy file named by park.policy_file of the main
configuration (--config, default `+defaultConfig+`). Edits keep the file's
comments and layout, are validated like a reload and written atomically;
on any error the file is left unchanged.
`)
}

func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		policyUsage(stderr)
		return 2
	}
	pc := &policyCmd{name: args[0], stdout: stdout, stderr: stderr}
	switch args[0] {
	case "new", "set":
		return pc.newOrSet(args[1:])
	case "get":
		return pc.get(args[1:])
	case "remove":
		return pc.remove(args[1:])
	case "grant":
		return pc.grant(args[1:])
	case "help", "-h", "--help", "-help":
		policyUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "parkswitch policy: unknown command %q\n", args[0])
	policyUsage(stderr)
	return 2
}

// policyCmd is one run of a policy subcommand.
type policyCmd struct {
	name           string // new, set, get, remove, grant
	stdout, stderr io.Writer
	fset           *flag.FlagSet
	config         *string
	configGiven    func() bool
}

func (pc *policyCmd) flags() *flag.FlagSet {
	pc.fset = newFlagSet("policy " + pc.name)
	pc.config, pc.configGiven = configFlag(pc.fset)
	return pc.fset
}

// parse parses flags and positional arguments in any order. It returns the
// positional arguments, or an exit status when there is nothing more to do.
func (pc *policyCmd) parse(args []string) ([]string, int, bool) {
	return parseInterspersed(pc.fset, args, policyUsages[pc.name], pc.stdout, pc.stderr)
}

// given reports whether flag name was on the command line.
func (pc *policyCmd) given(name string) bool { return flagGiven(pc.fset, name) }

func (pc *policyCmd) usageError(format string, args ...any) int {
	fmt.Fprintf(pc.stderr, "parkswitch policy %s: %s; usage: %s\n", pc.name, fmt.Sprintf(format, args...), oneLine(policyUsages[pc.name]))
	return 2
}

// fail reports an error on one line and returns exit status 1.
func (pc *policyCmd) fail(format string, args ...any) int {
	msg := strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " ")
	fmt.Fprintln(pc.stderr, "parkswitch: "+msg)
	return 1
}

// identityArg strips the "Tag:" prefix Teams shows in policy identities.
func identityArg(s string) string {
	if len(s) > 4 && strings.EqualFold(s[:4], "tag:") {
		return s[4:]
	}
	return s
}

func (pc *policyCmd) newOrSet(args []string) int {
	fset := pc.flags()
	allow := fset.Bool("allow-call-park", false, "allow park and retrieve (use --allow-call-park=false to forbid)")
	start := fset.Int("pickup-range-start", 0, "first park code, 10–9999 (a new policy gets 10 without it)")
	end := fset.Int("pickup-range-end", 0, "last park code, 10–9999, above the start (a new policy gets 99 without it)")
	timeout := fset.Int("park-timeout-seconds", 0, "seconds parked before the parker is rung back, 120–1800 (a new policy gets 300 without it)")
	desc := fset.String("description", "", "description of the policy")
	pos, code, ok := pc.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		for _, p := range pos[min(1, len(pos)):] {
			if p == "true" || p == "false" {
				return pc.usageError("write --allow-call-park=%s, with an equals sign", p)
			}
		}
		return pc.usageError("give exactly one policy identity")
	}
	identity := identityArg(pos[0])
	var c policy.Changes
	if pc.given("description") {
		c.Description = desc
	}
	if pc.given("allow-call-park") {
		c.AllowCallPark = allow
	}
	if pc.given("pickup-range-start") {
		c.PickupRangeStart = start
	}
	if pc.given("pickup-range-end") {
		c.PickupRangeEnd = end
	}
	if pc.given("park-timeout-seconds") {
		c.ParkTimeoutSeconds = timeout
	}
	if pc.name == "new" {
		return pc.edit(editNew(identity, c))
	}
	if c.IsZero() {
		return pc.usageError("give at least one of --allow-call-park, --pickup-range-start, --pickup-range-end, --park-timeout-seconds, --description")
	}
	return pc.edit(editSet(identity, c))
}

// editFunc is one change to the policy file (New-, Set-, Remove- or
// Grant-CsTeamsCallParkPolicy); it returns the line said on success. The
// CLI and the admin pages make their edits with the same ones.
type editFunc func(e *policyEdit) (string, error)

func editNew(identity string, c policy.Changes) editFunc {
	return func(e *policyEdit) (string, error) {
		if err := e.doc.New(identity, c); err != nil {
			return "", err
		}
		return fmt.Sprintf("policy %s created in %s", e.canonical(identity), e.file), nil
	}
}

func editSet(identity string, c policy.Changes) editFunc {
	return func(e *policyEdit) (string, error) {
		if err := e.doc.Set(identity, c); err != nil {
			return "", err
		}
		if e.unchanged() {
			return fmt.Sprintf("policy %s already has these settings: %s unchanged", e.canonical(identity), e.file), nil
		}
		return fmt.Sprintf("policy %s updated in %s", e.canonical(identity), e.file), nil
	}
}

func (pc *policyCmd) remove(args []string) int {
	pc.flags()
	pos, code, ok := pc.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return pc.usageError("give exactly one policy identity")
	}
	return pc.edit(editRemove(identityArg(pos[0]), true))
}

// editRemove removes a policy; a refusal because it is still granted says
// which grant commands would free it when commands is set.
func editRemove(identity string, commands bool) editFunc {
	return func(e *policyEdit) (string, error) {
		name := e.canonical(identity)
		err := e.doc.Remove(identity)
		var granted *policy.GrantedError
		if errors.As(err, &granted) && commands {
			var how []string
			for _, u := range granted.Users {
				how = append(how, "policy grant --user "+u+" --remove")
			}
			for _, g := range granted.Groups {
				how = append(how, "policy grant --group "+g+" --remove")
			}
			return "", fmt.Errorf("%w (%s)", err, strings.Join(how, "; "))
		}
		if err != nil {
			return "", err
		}
		if name == policy.GlobalIdentity {
			return fmt.Sprintf("policy Global reset to the defaults in %s (Global always exists)", e.file), nil
		}
		return fmt.Sprintf("policy %s removed from %s", name, e.file), nil
	}
}

func (pc *policyCmd) grant(args []string) int {
	fset := pc.flags()
	user := fset.String("user", "", "user id (address of record) to grant the policy to")
	group := fset.String("group", "", "group to grant the policy to")
	rank := fset.Int("rank", 0, "rank of a group grant: among a user's groups, rank 1 wins over 2")
	remove := fset.Bool("remove", false, "remove the grant of --user or --group instead")
	pos, code, ok := pc.parse(args)
	if !ok {
		return code
	}
	byUser, byGroup := pc.given("user"), pc.given("group")
	switch {
	case byUser && byGroup:
		return pc.usageError("give --user or --group, not both")
	case !byUser && !byGroup:
		return pc.usageError("give --user <id> or --group <name>")
	case len(pos) > 1:
		return pc.usageError("give at most one policy identity")
	case *remove && len(pos) == 1:
		return pc.usageError("--remove takes no policy identity: it removes the grant, whatever its policy")
	case *remove && pc.given("rank"):
		return pc.usageError("--remove takes no --rank")
	case !*remove && len(pos) == 0:
		return pc.usageError("name the policy to grant (or use --remove)")
	case byUser && pc.given("rank"):
		return pc.usageError("--rank is for group grants only")
	case byGroup && !*remove && !pc.given("rank"):
		return pc.usageError("a group grant needs --rank N (among a user's groups, rank 1 wins over 2)")
	}

	switch {
	case byUser && *remove:
		return pc.edit(editRevokeUser(*user))
	case byUser:
		return pc.edit(editGrantUser(*user, identityArg(pos[0])))
	case *remove:
		return pc.edit(editRevokeGroup(*group))
	}
	return pc.edit(editGrantGroup(*group, identityArg(pos[0]), *rank))
}

func editGrantUser(user, identity string) editFunc {
	return func(e *policyEdit) (string, error) {
		id, err := e.userID(user)
		if err != nil {
			return "", err
		}
		if err := e.doc.GrantUser(id, identity); err != nil {
			return "", err
		}
		if e.unchanged() {
			return fmt.Sprintf("user %s already has policy %s: %s unchanged", id, e.canonical(identity), e.file), nil
		}
		return fmt.Sprintf("policy %s granted to user %s in %s", e.canonical(identity), id, e.file), nil
	}
}

func editRevokeUser(user string) editFunc {
	return func(e *policyEdit) (string, error) {
		id, err := e.userID(user)
		if err != nil {
			return "", err
		}
		if err := e.doc.RevokeUser(id); err != nil {
			return "", err
		}
		return fmt.Sprintf("direct grant of user %s removed from %s: it now gets %s", id, e.file, e.effective(id)), nil
	}
}

func editGrantGroup(group, identity string, rank int) editFunc {
	return func(e *policyEdit) (string, error) {
		if err := e.doc.GrantGroup(group, identity, rank); err != nil {
			return "", err
		}
		if e.unchanged() {
			return fmt.Sprintf("group %s already has policy %s at rank %d: %s unchanged", group, e.canonical(identity), rank, e.file), nil
		}
		msg := fmt.Sprintf("policy %s granted to group %s at rank %d in %s", e.canonical(identity), group, rank, e.file)
		if !e.groupHasMembers(group) {
			msg += fmt.Sprintf(" (no configured user is in group %s yet)", group)
		}
		return msg, nil
	}
}

func editRevokeGroup(group string) editFunc {
	return func(e *policyEdit) (string, error) {
		if err := e.doc.RevokeGroup(group); err != nil {
			return "", err
		}
		return fmt.Sprintf("grant of group %s removed from %s", group, e.file), nil
	}
}

// policyEdit is the state an edit works on.
type policyEdit struct {
	cfg     *config.Config
	doc     *policy.Document
	file    string // the policy file
	orig    []byte // its content before the edit; nil when it does not exist
	missing bool   // the policy file does not exist yet
}

func (e *policyEdit) unchanged() bool { return !e.missing && bytes.Equal(e.doc.Bytes(), e.orig) }

// canonical returns the identity as the file spells it.
func (e *policyEdit) canonical(identity string) string {
	if p, ok := e.doc.Policies().Lookup(identity); ok {
		return p.Identity
	}
	return identity
}

// userID returns the configured spelling of a user id.
func (e *policyEdit) userID(s string) (string, error) {
	for _, u := range e.cfg.Users {
		if strings.EqualFold(u.ID, s) {
			return u.ID, nil
		}
	}
	if u, ok := e.cfg.User(s); ok {
		return "", fmt.Errorf("user %q is not a user id: write %s", s, u.ID)
	}
	return "", fmt.Errorf("unknown user %q: name a user listed under users in %s, by its id", s, e.cfg.Path)
}

// effective says which policy user gets and, for a group grant, through
// which group.
func (e *policyEdit) effective(user string) string {
	u, _ := e.cfg.User(user)
	set := e.doc.Policies()
	p := set.Resolve(u.ID, u.Groups)
	var via *policy.GroupGrant
	for _, g := range set.GroupGrants() {
		for _, name := range u.Groups {
			if strings.EqualFold(g.Group, name) && (via == nil || g.Rank < via.Rank) {
				via = &g
			}
		}
	}
	if via != nil && strings.EqualFold(via.Policy, p.Identity) {
		return fmt.Sprintf("policy %s through group %s", p.Identity, via.Group)
	}
	return "policy " + p.Identity
}

func (e *policyEdit) groupHasMembers(group string) bool {
	for _, u := range e.cfg.Users {
		for _, g := range u.Groups {
			if strings.EqualFold(g, group) {
				return true
			}
		}
	}
	return false
}

// edit runs change on the policy file of the configuration and prints
// the result.
func (pc *policyCmd) edit(change editFunc) int {
	msg, err := editPolicyFile(*pc.config, pc.configGiven(), change)
	if err != nil {
		return pc.fail("%s", err)
	}
	fmt.Fprintln(pc.stdout, msg)
	return 0
}

// editError is an edit refused: line says why on one line, err is what
// it comes from.
type editError struct {
	line string
	err  error
}

func (e *editError) Error() string { return e.line }
func (e *editError) Unwrap() error { return e.err }

func editFailed(err error, format string, args ...any) error {
	return &editError{line: fmt.Sprintf(format, args...), err: err}
}

// editPolicyFile loads the configuration at path (given: named by the
// operator, not the default) and its policy file, applies change, checks
// the result against the configuration as a reload would and writes it
// atomically. It returns change's line; on any error the file is as it
// was.
func editPolicyFile(path string, given bool, change editFunc) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !given {
			return "", editFailed(err, "%s does not exist: pass --config FILE (the built-in configuration cannot be edited)", path)
		}
		return "", editFailed(err, "cannot read the configuration %s (%v): fix the path or pass --config FILE", path, unwrapPath(err))
	}
	e := &policyEdit{}
	readPolicies := func(p string) ([]byte, error) {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			e.missing = true
			return nil, nil // created by this edit
		}
		e.orig = b
		return b, err
	}
	e.cfg, err = config.Parse(path, data, readPolicies)
	if err != nil {
		return "", editFailed(err, "%s", firstProblem(err, "cannot edit the policies until the configuration is valid: run parkswitch check --config "+path))
	}
	e.file = e.cfg.Park.PolicyFile
	if e.doc, err = policy.ParseDocument(e.file, e.orig); err != nil {
		return "", editFailed(err, "%s", firstProblem(err, "fix the policy file first"))
	}
	msg, err := change(e)
	if err != nil {
		return "", editFailed(err, "%s", flatten(err, e.file))
	}
	if e.unchanged() {
		return msg, nil
	}
	out := e.doc.Bytes()
	if _, err := e.cfg.ParsePolicies(e.file, out); err != nil {
		return "", editFailed(err, "%s", flatten(err, e.file))
	}
	if err := writeAtomic(e.file, out, e.orig, e.missing); err != nil {
		return "", editFailed(err, "%v", err)
	}
	return msg, nil
}

// firstProblem renders a load error on one line: its first problem, and how
// to see the others.
func firstProblem(err error, more string) string {
	var ps policy.Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		return err.Error()
	}
	msg := ps[0].Error()
	if len(ps) > 1 {
		msg += fmt.Sprintf(" (and %d more problems; %s)", len(ps)-1, more)
	}
	return msg
}

// flatten renders an edit's error on one line. Problems found in the edited
// policy file carry lines of content that was not written, so only their
// message is kept.
func flatten(err error, policyFile string) string {
	var ps policy.Problems
	if !errors.As(err, &ps) {
		return err.Error()
	}
	const most = 3
	var msgs []string
	for _, p := range ps[:min(len(ps), most)] {
		if p.File == policyFile || p.File == "" {
			msgs = append(msgs, p.Msg)
		} else {
			msgs = append(msgs, p.Error())
		}
	}
	msg := strings.Join(msgs, "; ")
	if len(ps) > most {
		msg += fmt.Sprintf(" (and %d more like these)", len(ps)-most)
	}
	return msg
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeAtomic replaces path with data: a temporary file in the same
// directory is written, synced and renamed over the original, so a reader
// (the server's reload) sees the old or the new file, never a part. The
// original's mode (and owner, where possible) are kept; a symbolic link is
// followed and stays a link. orig is the content the edit started from: if
// the file changed meanwhile, nothing is written.
func writeAtomic(path string, data, orig []byte, create bool) error {
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		target = resolved
	}
	mode := fs.FileMode(0o644)
	fi, err := os.Stat(target)
	switch {
	case err == nil:
		mode = fi.Mode().Perm()
	case errors.Is(err, fs.ErrNotExist) && create:
		fi = nil
	default:
		return fmt.Errorf("cannot read %s (%v): check the path and its permissions", path, unwrapPath(err))
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s (%v): check the directory's permissions", dir, unwrapPath(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("cannot write %s (%v): %s is unchanged", tmp.Name(), unwrapPath(err), path)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("cannot set the mode of %s (%v): %s is unchanged", tmp.Name(), unwrapPath(err), path)
	}
	if fi != nil {
		keepOwner(tmp, fi)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s (%v): %s is unchanged", tmp.Name(), unwrapPath(err), path)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s (%v): %s is unchanged", tmp.Name(), unwrapPath(err), path)
	}
	now, err := os.ReadFile(target)
	if create && errors.Is(err, fs.ErrNotExist) {
		now, err = nil, nil
	}
	if err != nil || !bytes.Equal(now, orig) {
		return fmt.Errorf("%s changed while it was being edited: run the command again", path)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("cannot replace %s (%v): check the directory's permissions", path, unwrapPath(err))
	}
	done = true
	// Make the rename itself durable; not every system can sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// get prints policies and grants.
func (pc *policyCmd) get(args []string) int {
	fset := pc.flags()
	output := fset.String("output", "table", "output format: table, yaml or json")
	pos, code, ok := pc.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return pc.usageError("give at most one policy identity")
	}
	switch *output {
	case "table", "yaml", "json":
	default:
		return pc.usageError("--output %q is not a format: use table, yaml or json", *output)
	}
	cfg, err := loadConfig(*pc.config, pc.configGiven())
	if err != nil {
		fmt.Fprintln(pc.stderr, err)
		return 1
	}
	set := cfg.Policies
	policies := set.Policies()
	if len(pos) == 1 {
		p, ok := set.Lookup(identityArg(pos[0]))
		if !ok {
			ids := make([]string, len(policies))
			for i, p := range policies {
				ids[i] = p.Identity
			}
			return pc.fail("no policy named %s: the policies are %s", identityArg(pos[0]), strings.Join(ids, ", "))
		}
		policies = []policy.Policy{p}
	}
	view := policyView{Policies: policies, Assignments: assignmentsView{
		Users:  append([]policy.UserGrant{}, set.UserGrants()...),
		Groups: append([]policy.GroupGrant{}, set.GroupGrants()...),
	}}
	var out []byte
	switch *output {
	case "json":
		var v any = view
		if len(pos) == 1 {
			v = policies[0]
		}
		out, err = json.MarshalIndent(v, "", "  ")
		out = append(out, '\n')
	case "yaml":
		var v any = view
		if len(pos) == 1 {
			v = policies[0]
		}
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err = enc.Encode(v); err == nil {
			err = enc.Close()
		}
		out = b.Bytes()
	default:
		out = policyTable(view, len(pos) == 0)
	}
	if err != nil {
		return pc.fail("%v", err)
	}
	pc.stdout.Write(out)
	return 0
}

// policyView is what get prints, shaped like the policy file.
type policyView struct {
	Policies    []policy.Policy `yaml:"policies" json:"policies"`
	Assignments assignmentsView `yaml:"assignments" json:"assignments"`
}

type assignmentsView struct {
	Users  []policy.UserGrant  `yaml:"users" json:"users"`
	Groups []policy.GroupGrant `yaml:"groups" json:"groups"`
}

// policyTable renders policies as an aligned table, with the grants below
// when withGrants.
func policyTable(v policyView, withGrants bool) []byte {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Identity\tAllowCallPark\tPickupRange\tParkTimeoutSeconds\tDescription")
	for _, p := range v.Policies {
		fmt.Fprintf(tw, "%s\t%t\t%d-%d\t%d\t%s\n", cell(p.Identity), p.AllowCallPark, p.PickupRangeStart, p.PickupRangeEnd, p.ParkTimeoutSeconds, cell(p.Description))
	}
	tw.Flush()
	if withGrants {
		b.WriteString("\n")
		if len(v.Assignments.Users) == 0 {
			b.WriteString("User grants: none\n")
		} else {
			fmt.Fprintln(tw, "User\tPolicy")
			for _, g := range v.Assignments.Users {
				fmt.Fprintf(tw, "%s\t%s\n", cell(g.User), cell(g.Policy))
			}
			tw.Flush()
		}
		b.WriteString("\n")
		if len(v.Assignments.Groups) == 0 {
			b.WriteString("Group grants: none\n")
		} else {
			groups := append([]policy.GroupGrant(nil), v.Assignments.Groups...)
			sort.SliceStable(groups, func(i, j int) bool { return groups[i].Rank < groups[j].Rank })
			fmt.Fprintln(tw, "Group\tRank\tPolicy")
			for _, g := range groups {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", cell(g.Group), strconv.Itoa(g.Rank), cell(g.Policy))
			}
			tw.Flush()
		}
	}
	// The last column is padded only up to its cell; trim what an empty one leaves.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return []byte(strings.Join(lines, "\n"))
}

// cell keeps a table cell on one line.
func cell(s string) string {
	if s == "" {
		return ""
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == '\t' }), " ")
}
