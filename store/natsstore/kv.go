package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// casAttempts bounds the read-modify-write loops; each lost round means
// another writer won, so running out is a conflict, not an outage.
const casAttempts = 50

// backoff waits a little after a lost compare-and-set, so that racing
// writers spread out (and a lagging replica catches up).
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 4)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type registration struct {
	Bindings []store.Binding `json:"bindings"`
}

// Bindings implements store.Registrations.
func (s *Store) Bindings(ctx context.Context, user string) ([]store.Binding, error) {
	what := "bindings of " + user
	if user == "" {
		return nil, fmt.Errorf("%s: %w: empty user", what, store.ErrInvalid)
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return nil, err
	}
	defer cancel()
	e, err := s.regs.get(c, userKey(user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	var r registration
	if s.regs.decode(e, &r) != nil {
		return nil, nil // a corrupt registration is no registration; the next REGISTER replaces it
	}
	return store.LiveBindings(r.Bindings, time.Now()), nil
}

// UpdateBindings implements store.Registrations. The key lives as long as
// its longest binding (a per-message TTL), and each binding is filtered at
// its own expiry on read.
func (s *Store) UpdateBindings(ctx context.Context, user string, fn func([]store.Binding) ([]store.Binding, error)) ([]store.Binding, error) {
	what := "update bindings of " + user
	if user == "" {
		return nil, fmt.Errorf("%s: %w: empty user", what, store.ErrInvalid)
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return nil, err
	}
	defer cancel()
	key := userKey(user)
	for attempt := range casAttempts {
		e, err := s.regs.get(c, key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, s.fail(ctx, what, err)
		}
		var r registration
		if e.rev != 0 {
			_ = s.regs.decode(e, &r) // corrupt: start afresh over its revision
		}
		now := time.Now()
		out, err := fn(store.LiveBindings(r.Bindings, now))
		if err != nil {
			return nil, err
		}
		out = store.LiveBindings(slices.Clone(out), now)
		switch {
		case len(out) == 0 && e.rev == 0:
			return nil, nil
		case len(out) == 0:
			err = s.regs.remove(c, key, e.rev)
		default:
			var data []byte
			if data, err = json.Marshal(registration{Bindings: out}); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			ttl := bindingsTTL(out, now)
			if e.rev == 0 {
				_, err = s.regs.create(c, key, data, ttl)
			} else {
				_, err = s.regs.update(c, key, data, e.rev, ttl)
			}
		}
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict) {
			return nil, s.fail(ctx, what, err)
		}
		if err := backoff(c, attempt); err != nil {
			return nil, s.fail(ctx, what, err)
		}
	}
	return nil, fmt.Errorf("%s: %w: %d writers in a row won the race", what, store.ErrConflict, casAttempts)
}

// bindingsTTL is how long the key of bs must live: until the last expiry,
// rounded up to whole seconds as the server counts them.
func bindingsTTL(bs []store.Binding, now time.Time) time.Duration {
	var last time.Time
	for _, b := range bs {
		if b.Expires.After(last) {
			last = b.Expires
		}
	}
	d := last.Sub(now)
	return max((d + time.Second - 1).Truncate(time.Second), time.Second)
}

// AllBindings implements store.Registrations.
func (s *Store) AllBindings(ctx context.Context) ([]store.Binding, error) {
	what := "all bindings"
	if err := s.ready(ctx, what); err != nil {
		return nil, err
	}
	es, err := s.regs.list(ctx, "u.>")
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	now := time.Now()
	type user struct {
		name string
		bs   []store.Binding
	}
	var users []user
	for _, e := range es {
		var r registration
		if s.regs.decode(e, &r) != nil {
			continue
		}
		if bs := store.LiveBindings(r.Bindings, now); len(bs) > 0 {
			users = append(users, user{bs[0].User, bs})
		}
	}
	slices.SortFunc(users, func(a, b user) int { return compareStrings(a.name, b.name) })
	var out []store.Binding
	for _, u := range users {
		out = append(out, u.bs...)
	}
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CreateOrbit implements store.Orbits.
func (s *Store) CreateOrbit(ctx context.Context, o store.Orbit) (store.Orbit, error) {
	what := fmt.Sprintf("create orbit %s/%d", o.Policy, o.Code)
	if err := store.CheckOrbitKey(o.Policy, o.Code); err != nil {
		return store.Orbit{}, err
	}
	rev, err := s.writeJSON(ctx, what, s.orbits, orbitKey(o.Policy, o.Code), o, 0, true)
	if err != nil {
		return store.Orbit{}, err
	}
	o.Revision = rev
	return o, nil
}

// writeJSON stores v as JSON at key of b: create-if-absent with create
// set, otherwise over revision rev (0: whatever is there). what names the
// operation in errors.
func (s *Store) writeJSON(ctx context.Context, what string, b *bucket, key string, v any, rev uint64, create bool) (uint64, error) {
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return 0, err
	}
	defer cancel()
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if create {
		rev, err = b.create(c, key, data, 0)
	} else {
		rev, err = b.update(c, key, data, rev, 0)
	}
	if err != nil {
		return 0, s.fail(ctx, what, err)
	}
	return rev, nil
}

// GetOrbit implements store.Orbits.
func (s *Store) GetOrbit(ctx context.Context, policy string, code int) (store.Orbit, error) {
	what := fmt.Sprintf("get orbit %s/%d", policy, code)
	if err := store.CheckOrbitKey(policy, code); err != nil {
		return store.Orbit{}, err
	}
	o, rev, err := getRecord[store.Orbit](ctx, s, s.orbits, orbitKey(policy, code), what)
	o.Revision = rev
	return o, err
}

// UpdateOrbit implements store.Orbits.
func (s *Store) UpdateOrbit(ctx context.Context, o store.Orbit) (store.Orbit, error) {
	what := fmt.Sprintf("update orbit %s/%d at revision %d", o.Policy, o.Code, o.Revision)
	if err := store.CheckOrbitKey(o.Policy, o.Code); err != nil {
		return store.Orbit{}, err
	}
	if o.Revision == 0 { // revision 0 would mean "whatever is there"
		return store.Orbit{}, fmt.Errorf("%s: %w", what, store.ErrConflict)
	}
	rev, err := s.writeJSON(ctx, what, s.orbits, orbitKey(o.Policy, o.Code), o, o.Revision, false)
	if err != nil {
		return store.Orbit{}, err
	}
	o.Revision = rev
	return o, nil
}

// DeleteOrbit implements store.Orbits.
func (s *Store) DeleteOrbit(ctx context.Context, o store.Orbit) error {
	what := fmt.Sprintf("delete orbit %s/%d at revision %d", o.Policy, o.Code, o.Revision)
	if err := store.CheckOrbitKey(o.Policy, o.Code); err != nil {
		return err
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.orbits.remove(c, orbitKey(o.Policy, o.Code), o.Revision); err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// ListOrbits implements store.Orbits.
func (s *Store) ListOrbits(ctx context.Context, policy string) ([]store.Orbit, error) {
	what, filter := "list orbits", "o.>"
	if policy != "" {
		what, filter = "list orbits of "+policy, "o."+policyToken(policy)+".*"
	}
	if err := s.ready(ctx, what); err != nil {
		return nil, err
	}
	es, err := s.orbits.list(ctx, filter)
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	out := make([]store.Orbit, 0, len(es))
	for _, e := range es {
		var o store.Orbit
		if s.orbits.decode(e, &o) != nil {
			continue
		}
		o.Revision = e.rev
		out = append(out, o)
	}
	store.SortOrbits(out)
	return out, nil
}

// LastCode implements store.Orbits.
func (s *Store) LastCode(ctx context.Context, policy string) (int, error) {
	what := "last code of " + policy
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return 0, err
	}
	defer cancel()
	e, err := s.orbits.get(c, cursorKey(policy))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail(ctx, what, err)
	}
	code, err := strconv.Atoi(string(e.value))
	if err != nil {
		s.log.Error().Err(err).Str("key", e.key).Msg("corrupt allocation cursor ignored")
		return 0, nil
	}
	return code, nil
}

// SetLastCode implements store.Orbits.
func (s *Store) SetLastCode(ctx context.Context, policy string, code int) error {
	what := fmt.Sprintf("set last code of %s to %d", policy, code)
	if err := store.CheckOrbitKey(policy, code); err != nil {
		return err
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := s.orbits.update(c, cursorKey(policy), []byte(strconv.Itoa(code)), 0, 0); err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// PutDialog implements store.Dialogs.
func (s *Store) PutDialog(ctx context.Context, d store.Dialog) (store.Dialog, error) {
	what := fmt.Sprintf("put dialog %s/%s", d.CallID, d.LocalTag)
	if err := store.CheckDialogKey(d.CallID, d.LocalTag); err != nil {
		return store.Dialog{}, err
	}
	rev, err := s.writeJSON(ctx, what, s.dialogs, dialogKey(d.CallID, d.LocalTag), d, d.Revision, false)
	if err != nil {
		return store.Dialog{}, err
	}
	d.Revision = rev
	return d, nil
}

// GetDialog implements store.Dialogs.
func (s *Store) GetDialog(ctx context.Context, callID, localTag string) (store.Dialog, error) {
	what := fmt.Sprintf("get dialog %s/%s", callID, localTag)
	if err := store.CheckDialogKey(callID, localTag); err != nil {
		return store.Dialog{}, err
	}
	d, rev, err := getRecord[store.Dialog](ctx, s, s.dialogs, dialogKey(callID, localTag), what)
	d.Revision = rev
	return d, err
}

// getRecord reads and decodes one JSON record of b with its revision; on
// an error the zero record and revision 0.
func getRecord[T any](ctx context.Context, s *Store, b *bucket, key, what string) (T, uint64, error) {
	var v T
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return v, 0, err
	}
	defer cancel()
	e, err := b.get(c, key)
	if err != nil {
		return v, 0, s.fail(ctx, what, err)
	}
	if err := b.decode(e, &v); err != nil {
		var zero T
		return zero, 0, err
	}
	return v, e.rev, nil
}

// DeleteDialog implements store.Dialogs.
func (s *Store) DeleteDialog(ctx context.Context, callID, localTag string) error {
	what := fmt.Sprintf("delete dialog %s/%s", callID, localTag)
	if err := store.CheckDialogKey(callID, localTag); err != nil {
		return err
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.dialogs.remove(c, dialogKey(callID, localTag), 0); err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// ListDialogs implements store.Dialogs.
func (s *Store) ListDialogs(ctx context.Context, node string) ([]store.Dialog, error) {
	what := "list dialogs"
	if err := s.ready(ctx, what); err != nil {
		return nil, err
	}
	es, err := s.dialogs.list(ctx, "d.>")
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	var out []store.Dialog
	for _, e := range es {
		var d store.Dialog
		if s.dialogs.decode(e, &d) != nil || node != "" && d.Owner != node {
			continue
		}
		d.Revision = e.rev
		out = append(out, d)
	}
	store.SortDialogs(out)
	return out, nil
}
