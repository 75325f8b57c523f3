package sip

import (
	"hash/maphash"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/sip/sipcheck"
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
	Node      string // node that holds the device's flow; "" for a static contact
	// Restored marks a binding this process loaded from the store at
	// start rather than received: a TCP or TLS connection it came on
	// belonged to the process before, so requests go to its Contact.
	Restored bool
}

// dest is where requests to the binding's device go: the flow the
// REGISTER came on, or for a restored stream binding, whose connection is
// gone, a new connection to its Contact.
func (b Binding) dest() string {
	if b.Restored && !strings.EqualFold(b.Transport, "UDP") {
		return contactAddr(b.Contact)
	}
	return b.Source
}

// userLocks serialise the REGISTERs of one user on this node, so that the
// local copy is set in the order the store's writes happened.
const userLocks = 64

// Registrar is this node's copy of the bindings it holds: those whose
// REGISTER it received. The store is the record (see regstore.go); calls
// read this copy and never wait on the store for a local binding.
type Registrar struct {
	now        func() time.Time
	maxExpires int
	node       string

	seed  maphash.Seed
	locks [userLocks]sync.Mutex

	mu       sync.Mutex
	bindings map[string][]*Binding
	dirty    map[string]struct{} // users whose bindings here the store lacks
}

func newRegistrar(now func() time.Time, maxExpires int, node string) *Registrar {
	return &Registrar{
		now: now, maxExpires: maxExpires, node: node, seed: maphash.MakeSeed(),
		bindings: make(map[string][]*Binding), dirty: make(map[string]struct{}),
	}
}

// userLock is the lock of user's REGISTERs.
func (g *Registrar) userLock(user string) *sync.Mutex {
	return &g.locks[maphash.String(g.seed, user)%userLocks]
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

// applyTo returns the registered bindings cur (of every node) updated as
// RFC 3261 §10.3 steps 6–8 say, the new ones held by node. It has no side
// effects: the store may run it again on newer bindings.
func applyTo(cur []Binding, r registration, now time.Time, node string) []Binding {
	cur = slices.DeleteFunc(slices.Clone(cur), func(b Binding) bool { return b.Static || !now.Before(b.Expires) })
	if r.wildcard {
		cur = cur[:0]
	}
	for _, ce := range r.contacts {
		key := contactKey(ce.uri)
		i := slices.IndexFunc(cur, func(b Binding) bool { return contactKey(b.Contact) == key })
		if i >= 0 && cur[i].CallID == r.callID && r.cseq <= cur[i].CSeq {
			continue // stale or reordered refresh (§10.3 step 7)
		}
		if ce.expires == 0 {
			if i >= 0 {
				cur = slices.Delete(cur, i, i+1)
			}
			continue
		}
		b := Binding{
			User: r.user, Contact: ce.uri, Source: r.source, Transport: r.transport,
			Expires: now.Add(time.Duration(ce.expires) * time.Second),
			CallID:  r.callID, CSeq: r.cseq, UserAgent: r.userAgent, Node: node,
		}
		if i >= 0 {
			cur[i] = b
		} else {
			cur = append(cur, b)
		}
	}
	return cur
}

// apply updates the local bindings of r.user alone, as when the store
// cannot be written, and returns them.
func (g *Registrar) apply(r registration) []Binding {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	out := applyTo(copyBindings(g.live(r.user, now)), r, now, g.node)
	g.setLocked(r.user, out)
	return out
}

// replace makes bs (this node's bindings of user, as the store now holds
// them) the local copy. A binding the REGISTER did not touch keeps its
// Restored mark.
func (g *Registrar) replace(user string, bs []Binding) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range bs {
		for _, old := range g.bindings[user] {
			if old.Restored && old.CallID == bs[i].CallID && old.CSeq == bs[i].CSeq && contactKey(old.Contact) == contactKey(bs[i].Contact) {
				bs[i].Restored = true
			}
		}
	}
	g.setLocked(user, bs)
}

// load takes this node's bindings from the store at start, for users with
// none here yet, marked Restored.
func (g *Registrar) load(bs []Binding) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	byUser := make(map[string][]Binding)
	for _, b := range bs {
		if _, ok := g.bindings[b.User]; ok {
			continue
		}
		b.Restored = true
		byUser[b.User] = append(byUser[b.User], b)
	}
	n := 0
	for u, bs := range byUser {
		g.setLocked(u, bs)
		n += len(bs)
	}
	return n
}

func (g *Registrar) setLocked(user string, bs []Binding) {
	if len(bs) == 0 {
		delete(g.bindings, user)
		return
	}
	ps := make([]*Binding, len(bs))
	for i := range bs {
		b := bs[i]
		ps[i] = &b
	}
	g.bindings[user] = ps
}

// markDirty records that the store lacks the local bindings of user;
// clean that it has them again.
func (g *Registrar) markDirty(user string) {
	g.mu.Lock()
	g.dirty[user] = struct{}{}
	g.mu.Unlock()
}

func (g *Registrar) clean(user string) {
	g.mu.Lock()
	delete(g.dirty, user)
	g.mu.Unlock()
}

func (g *Registrar) isDirty(user string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.dirty[user]
	return ok
}

// dirtyUsers lists the users to write to the store again.
func (g *Registrar) dirtyUsers() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.dirty))
	for u := range g.dirty {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
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
	sort.SliceStable(out, func(i, j int) bool { return out[i].User < out[j].User })
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

// contactAddr is the host:port a contact URI names, 5060 when it names no
// port.
func contactAddr(uri sip.Uri) string {
	port := uri.Port
	if port == 0 {
		port = 5060
	}
	host := uri.Host
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return netip.AddrPortFrom(ip, uint16(port)).String()
	}
	return host + ":" + strconv.Itoa(port)
}

// staticBinding turns a configured contact into a binding for a user whose
// device never registers.
func staticBinding(u *User) (Binding, bool) {
	if u.Contact == "" {
		return Binding{}, false
	}
	// The rule the configuration was checked with.
	uri, err := sipcheck.ParseSIPURI(strings.Trim(u.Contact, "<>"))
	if err != nil {
		return Binding{}, false
	}
	tp := "UDP"
	if t, ok := uri.UriParams.Get("transport"); ok {
		tp = strings.ToUpper(t)
	}
	return Binding{User: strings.ToLower(u.Name), Contact: uri, Source: contactAddr(uri), Transport: tp, Static: true}, true
}
