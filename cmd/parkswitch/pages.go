package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/web"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/sip"
)

// The pages for people (package web) beside the admin API: /api/ and the
// open paths keep their Basic and Bearer authentication; every other path
// is a page, signed in with a session cookie.

func (s *server) newSite() *web.Site {
	return web.New(web.Options{
		Accounts: pageAccounts{s.api},
		Switch:   pageSwitch{s},
		Policies: pagePolicies{s: s, mu: &sync.Mutex{}},
		Log:      s.log,
	})
}

// httpHandler sends the API's paths to the API and the rest to the pages.
func (s *server) httpHandler() http.Handler {
	api := s.api.wrap(s.routes())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || openPaths[r.URL.Path] {
			api.ServeHTTP(w, r)
			return
		}
		s.site.ServeHTTP(w, r)
	})
}

// current is the configuration in force: the last one a reload applied.
func (r *reloader) current() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// pageSwitch is the running switch as the board sees it.
type pageSwitch struct{ s *server }

func (p pageSwitch) Orbits(ctx context.Context) []park.OrbitInfo { return p.s.orbits(ctx) }

func (p pageSwitch) Node() string { return p.s.sw.Lot().Node() }

func (p pageSwitch) Events() http.Handler { return http.HandlerFunc(p.s.serveEvents) }

// Users lists the configured users, each marked when a phone of theirs is
// registered on any node.
func (p pageSwitch) Users() []web.User {
	registered := map[string]bool{}
	for _, b := range p.s.sw.Registrations() {
		registered[strings.ToLower(b.User)] = true
	}
	users := p.s.sw.Directory().Users()
	out := make([]web.User, 0, len(users))
	for _, u := range users {
		out = append(out, web.User{Name: u.Name, ID: u.ID, Extension: u.Extension, DisplayName: u.DisplayName,
			Registered: registered[strings.ToLower(u.Name)]})
	}
	return out
}

// RetrieveTo rings the user for park.ringback_seconds, as a ringback
// rings the parker.
func (p pageSwitch) RetrieveTo(ctx context.Context, policy string, code int, user string) (web.User, error) {
	ring := p.s.reloader.current().Park.Ringback()
	u, err := p.s.sw.RetrieveTo(ctx, policy, code, user, ring)
	switch {
	case errors.Is(err, sip.ErrNotParkedHere):
		return web.User{}, fmt.Errorf("no call is parked at %d in %s on this switch any more", code, policy)
	case errors.Is(err, sip.ErrUnknownUser):
		return web.User{}, fmt.Errorf("there is no user %q", user)
	case errors.Is(err, sip.ErrNoPhone):
		return web.User{}, fmt.Errorf("user %s has no phone registered: choose someone else", user)
	case errors.Is(err, sip.ErrRingingTo):
		return web.User{}, fmt.Errorf("the call at %d is already ringing another user's phones: wait until they answer or stop", code)
	case err != nil:
		return web.User{}, fmt.Errorf("the call at %d cannot be rung to %s: %w", code, user, err)
	}
	return web.User{Name: u.Name, ID: u.ID, Extension: u.Extension, DisplayName: u.DisplayName, Registered: true}, nil
}

// pagePolicies edits the policy file for the admin pages exactly as
// `parkswitch policy` does (editPolicyFile, with the same validation and
// atomic, comment-keeping write) and then reloads, so that the running
// switch applies the edit before the page says it is done. Edits from the
// pages are made one at a time.
type pagePolicies struct {
	s  *server
	mu *sync.Mutex
}

func (p pagePolicies) Current() *policy.Set { return p.s.sw.Policies() }

func (p pagePolicies) Refused() error {
	_, err := p.s.reloader.status()
	return err
}

func (p pagePolicies) Users() []web.PolicyUser {
	cfg := p.s.reloader.current()
	out := make([]web.PolicyUser, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		label := web.User{Name: u.Name(), Extension: u.Extension, DisplayName: u.DisplayName}.Label()
		out = append(out, web.PolicyUser{ID: u.ID, Label: label, Groups: u.Groups})
	}
	return out
}

func (p pagePolicies) edit(change editFunc) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.s.reloader.fromFile {
		return "", errors.New("the built-in configuration cannot be edited: start the switch with --config FILE")
	}
	msg, err := editPolicyFile(p.s.reloader.current().Path, true, change)
	if err != nil {
		return "", err
	}
	if err := p.s.reloader.reload("policy file edited on the admin pages"); err != nil {
		return "", fmt.Errorf("%s, but the switch refused the configuration: %s", msg, firstProblem(err, "see GET /healthz"))
	}
	return msg, nil
}

func (p pagePolicies) New(identity string, c policy.Changes) (string, error) {
	return p.edit(editNew(identity, c))
}

func (p pagePolicies) Set(identity string, c policy.Changes) (string, error) {
	return p.edit(editSet(identity, c))
}

func (p pagePolicies) Remove(identity string) (string, error) {
	return p.edit(editRemove(identity, false))
}

func (p pagePolicies) GrantGroup(group, identity string, rank int) (string, error) {
	return p.edit(editGrantGroup(group, identity, rank))
}

func (p pagePolicies) RevokeGroup(group string) (string, error) {
	return p.edit(editRevokeGroup(group))
}

func (p pagePolicies) GrantUser(user, identity string) (string, error) {
	return p.edit(editGrantUser(user, identity))
}

func (p pagePolicies) RevokeUser(user string) (string, error) { return p.edit(editRevokeUser(user)) }
