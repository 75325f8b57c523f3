package sip

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Binding is one registered contact of a user (RFC 3261 §10).
type Binding struct {
	User      string    // user name (lower case)
	Contact   sip.Uri   // as the device registered it
	Source    string    // host:port the REGISTER came from: where requests go (NAT)
	Transport string    // "UDP" or "TCP"
	Expires   time.Time // zero for static bindings
	CallID    string
	CSeq      uint32
	UserAgent string
	Static    bool
}

// Registrar keeps the contact bindings of every user.
type Registrar struct {
	now        func() time.Time
	maxExpires int

	mu       sync.Mutex
	bindings map[string][]*Binding
}

func newRegistrar(now func() time.Time, maxExpires int) *Registrar {
	return &Registrar{now: now, maxExpires: maxExpires, bindings: make(map[string][]*Binding)}
}

// registration is one REGISTER's worth of changes, validated.
type registration struct {
	user      string
	callID    string
	cseq      uint32
	source    string
	transport string
	userAgent string
	wildcard  bool
	contacts  []contactExpiry
}

type contactExpiry struct {
	uri     sip.Uri
	expires int // seconds, 0 removes
}

// apply updates the bindings of r.user as RFC 3261 §10.3 steps 6–8 say and
// returns the bindings in force afterwards.
func (g *Registrar) apply(r registration) []Binding {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	cur := g.live(r.user, now)
	if r.wildcard {
		cur = slices.DeleteFunc(cur, func(b *Binding) bool { return !b.Static })
	}
	for _, ce := range r.contacts {
		key := contactKey(ce.uri)
		i := slices.IndexFunc(cur, func(b *Binding) bool { return !b.Static && contactKey(b.Contact) == key })
		if i >= 0 && cur[i].CallID == r.callID && r.cseq <= cur[i].CSeq {
			continue // stale or reordered refresh (§10.3 step 7)
		}
		if ce.expires == 0 {
			if i >= 0 {
				cur = slices.Delete(cur, i, i+1)
			}
			continue
		}
		b := &Binding{
			User: r.user, Contact: ce.uri, Source: r.source, Transport: r.transport,
			Expires: now.Add(time.Duration(ce.expires) * time.Second),
			CallID:  r.callID, CSeq: r.cseq, UserAgent: r.userAgent,
		}
		if i >= 0 {
			cur[i] = b
		} else {
			cur = append(cur, b)
		}
	}
	if len(cur) == 0 {
		delete(g.bindings, r.user)
	} else {
		g.bindings[r.user] = cur
	}
	return copyBindings(cur)
}

// Lookup returns the live bindings of a user name.
func (g *Registrar) Lookup(user string) []Binding {
	g.mu.Lock()
	defer g.mu.Unlock()
	return copyBindings(g.live(strings.ToLower(user), g.now()))
}

// All returns every live binding, sorted by user.
func (g *Registrar) All() []Binding {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var out []Binding
	for u := range g.bindings {
		out = append(out, copyBindings(g.live(u, now))...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Count reports live bindings.
func (g *Registrar) Count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, bs := range g.bindings {
		n += len(bs)
	}
	return n
}

// expire drops bindings whose lifetime is over.
func (g *Registrar) expire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for u := range g.bindings {
		g.live(u, now)
	}
}

// live prunes expired bindings of user in place; callers hold mu.
func (g *Registrar) live(user string, now time.Time) []*Binding {
	bs := g.bindings[user]
	bs = slices.DeleteFunc(bs, func(b *Binding) bool { return !b.Static && !now.Before(b.Expires) })
	if len(bs) == 0 {
		delete(g.bindings, user)
		return nil
	}
	g.bindings[user] = bs
	return bs
}

func copyBindings(bs []*Binding) []Binding {
	out := make([]Binding, len(bs))
	for i, b := range bs {
		out[i] = *b
	}
	return out
}

// contactKey compares contacts the way RFC 3261 §10.3 asks (URI equality),
// simplified to scheme, user, host, port and transport.
func contactKey(u sip.Uri) string {
	t, _ := u.UriParams.Get("transport")
	port := u.Port
	return strings.ToLower(u.Scheme + ":" + u.User + "@" + u.Host + ":" + strconv.Itoa(port) + ";" + t)
}

// staticBinding turns a configured contact into a binding for a user whose
// device never registers.
func staticBinding(u *User) (Binding, bool) {
	if u.Contact == "" {
		return Binding{}, false
	}
	var uri sip.Uri
	if err := sip.ParseUri(strings.Trim(u.Contact, "<>"), &uri); err != nil || uri.Host == "" {
		return Binding{}, false
	}
	tp := "UDP"
	if t, ok := uri.UriParams.Get("transport"); ok {
		tp = strings.ToUpper(t)
	}
	port := uri.Port
	if port == 0 {
		port = 5060
	}
	host := uri.Host
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		host = netip.AddrPortFrom(ip, uint16(port)).String()
	} else {
		host = host + ":" + strconv.Itoa(port)
	}
	return Binding{User: strings.ToLower(u.Name), Contact: uri, Source: host, Transport: tp, Static: true}, true
}
