package main

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/web"
)

// pageAccounts are the http.users of the admin API as the pages' sign-in
// sees them: the same passwords, roles and failure limits (a source that
// failed too often is locked out of both).
type pageAccounts struct{ a *apiAuth }

func (p pageAccounts) Open() bool {
	c := p.a.creds.Load()
	return len(c.users) == 0 && len(c.tokens) == 0
}

func (p pageAccounts) CanSignIn() bool { return len(p.a.creds.Load().users) > 0 }

func (p pageAccounts) SignIn(src, name, password string) (web.Account, error) {
	if p.a.lockedOut(src) {
		return web.Account{}, web.ErrLockedOut
	}
	c := p.a.creds.Load()
	if c.checkPassword(name, password) == nil {
		p.a.log.Warn().Str("source", src).Str("user", name).Msg("page sign-in failed")
		p.a.count(src)
		return web.Account{}, web.ErrBadCredentials
	}
	acct, _ := p.Account(name)
	return acct, nil
}

// Account is the user as configured now. Its stamp is a digest of the
// password hash and role, so a session ends when either changes.
func (p pageAccounts) Account(name string) (web.Account, bool) {
	u, ok := p.a.creds.Load().users[name]
	if !ok {
		return web.Account{}, false
	}
	sum := sha256.Sum256([]byte(u.Role + "\x00" + u.PasswordHash))
	return web.Account{Name: u.Name, Role: u.Role, Stamp: hex.EncodeToString(sum[:16])}, true
}
