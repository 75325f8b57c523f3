package sip

import (
	"net/netip"
	"strings"
)

// User is one subscriber of the switch: the address of record, the name it
// authenticates with and the numbers it can be dialed on.
type User struct {
	ID          string // address of record, user@domain
	Name        string // user part of ID: SIP and digest user name
	Extension   string // optional dialable number
	DisplayName string
	Password    string // or HA1 and/or HA1SHA256
	HA1         string // hex MD5(name:realm:password)
	HA1SHA256   string // hex SHA-256(name:realm:password)
	Groups      []string
	Contact     string // static binding for a device that never registers
}

// Trunk is an IP-authenticated peer such as a carrier or a PSTN gateway.
type Trunk struct {
	Name           string
	Address        netip.AddrPort
	Transport      string // "udp" or "tcp"
	OutboundPrefix string
}

// Directory answers who a user is and where a dialed string leads. It is
// immutable; the switch swaps a whole new Directory on reload so that a
// lookup never sees a half-applied configuration.
type Directory struct {
	users   []*User
	byName  map[string]*User // lower-case user part
	byExt   map[string]*User
	trunks  []*Trunk
	byTrunk map[netip.Addr]*Trunk
}

// NewDirectory indexes users and trunks. Callers validate uniqueness first
// (the configuration loader does); later duplicates shadow nothing here.
func NewDirectory(users []User, trunks []Trunk) *Directory {
	d := &Directory{
		byName:  make(map[string]*User, len(users)),
		byExt:   make(map[string]*User, len(users)),
		byTrunk: make(map[netip.Addr]*Trunk, len(trunks)),
	}
	for i := range users {
		u := users[i]
		if u.Name == "" {
			u.Name, _, _ = strings.Cut(u.ID, "@")
		}
		d.users = append(d.users, &u)
		if _, dup := d.byName[strings.ToLower(u.Name)]; !dup {
			d.byName[strings.ToLower(u.Name)] = &u
		}
		if u.Extension != "" {
			if _, dup := d.byExt[u.Extension]; !dup {
				d.byExt[u.Extension] = &u
			}
		}
	}
	for i := range trunks {
		t := trunks[i]
		d.trunks = append(d.trunks, &t)
		if _, dup := d.byTrunk[t.Address.Addr()]; !dup {
			d.byTrunk[t.Address.Addr()] = &t
		}
	}
	return d
}

// UserByName finds a user by SIP/digest user name (case-insensitive).
func (d *Directory) UserByName(name string) (*User, bool) {
	u, ok := d.byName[strings.ToLower(name)]
	return u, ok
}

// Dialed finds the user a dialed string (Request-URI user part) names: an
// extension first, then a user name.
func (d *Directory) Dialed(s string) (*User, bool) {
	if u, ok := d.byExt[s]; ok {
		return u, true
	}
	return d.UserByName(s)
}

// TrunkFrom returns the trunk whose address the source IP belongs to.
func (d *Directory) TrunkFrom(ip netip.Addr) (*Trunk, bool) {
	t, ok := d.byTrunk[ip.Unmap()]
	return t, ok
}

// TrunkFor returns the trunk whose outbound prefix starts the dialed string
// (longest prefix wins) and the number to send it.
func (d *Directory) TrunkFor(dialed string) (*Trunk, string, bool) {
	var best *Trunk
	for _, t := range d.trunks {
		if t.OutboundPrefix == "" || !strings.HasPrefix(dialed, t.OutboundPrefix) || len(dialed) == len(t.OutboundPrefix) {
			continue
		}
		if best == nil || len(t.OutboundPrefix) > len(best.OutboundPrefix) {
			best = t
		}
	}
	if best == nil {
		return nil, "", false
	}
	return best, dialed[len(best.OutboundPrefix):], true
}

// Users lists every user in configuration order.
func (d *Directory) Users() []*User { return d.users }
