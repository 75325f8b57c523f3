package sip

import (
	"context"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A cluster is several switches on one store (SPEC §10). Each node
// publishes its SIP address (store.Node.Addr). A call to a user whose
// binding another node holds is sent to that node as an INVITE marked with
// hopHeader; the receiving node rings the phones of that user it holds
// itself and nothing else, so a request never crosses between nodes twice.
// A node is trusted, like a trunk, by its source: the exact UDP address a
// live node published, so that a phone on a node's host is no node. The
// marker from any other source is ignored and the request authenticated
// as usual.
//
// The API other features build on: nodeAddr, fromNode and hopUser, and
// nodeTarget, a target that placeCall forwards a dialog-creating INVITE to.
const (
	// hopHeader names the node that sent the INVITE and, for a caller
	// that node authenticated, the user: "a;user=1001".
	hopHeader = "X-Parkswitch-Node"

	nodeRefreshInterval = time.Second            // how old the list of live nodes may get
	nodeForceInterval   = time.Second            // at most one extra refresh per interval, on a miss
	nodeLookupTimeout   = 500 * time.Millisecond // bound of one extra refresh
	remoteLookupTimeout = time.Second            // bound of reading a callee's bindings in the store
)

// nodeView is the live nodes as last read from the store.
type nodeView struct {
	addrOf map[string]string // node ID → SIP address, this node included
	byAddr map[string]string // SIP address → node ID, this node left out
	live   map[string]bool   // every live node ID, with an address or not; nil before the first read
}

var emptyView = &nodeView{addrOf: map[string]string{}, byAddr: map[string]string{}}

// cluster is the switch's view of the other nodes.
type cluster struct {
	view      atomic.Pointer[nodeView]
	published atomic.Bool // this node's address is in the store

	mu       sync.Mutex // one forced refresh at a time
	forcedAt time.Time
}

// sipAddr is where other nodes reach this one: the advertised address and
// the UDP port; "" without a UDP listener.
func (s *Switch) sipAddr() string {
	udp := s.Addr("udp")
	if !udp.IsValid() {
		return ""
	}
	return netip.AddrPortFrom(s.opts.AdvertiseIP.Unmap(), udp.Port()).String()
}

// publishAddr records this node's SIP address in the store.
func (s *Switch) publishAddr(ctx context.Context) {
	addr := s.sipAddr()
	if addr == "" {
		s.cluster.published.Store(true) // nothing to publish: no node can call this one
		return
	}
	if err := s.opts.Store.SetNodeAddr(ctx, addr); err != nil {
		s.storeTrouble("this node's SIP address not published yet", err)
		return
	}
	s.cluster.published.Store(true)
}

// refreshNodes reads the live nodes.
func (s *Switch) refreshNodes(ctx context.Context) error {
	ns, err := s.opts.Store.ListNodes(ctx)
	if err != nil {
		return err
	}
	self := s.opts.Store.NodeID()
	v := &nodeView{addrOf: make(map[string]string, len(ns)), byAddr: make(map[string]string, len(ns)), live: make(map[string]bool, len(ns))}
	for _, n := range ns {
		v.live[n.ID] = true
		addr := normAddr(n.Addr)
		if addr == "" {
			continue
		}
		v.addrOf[n.ID] = addr
		if n.ID != self {
			v.byAddr[addr] = n.ID
		}
	}
	s.cluster.view.Store(v)
	return nil
}

// nodes returns the live nodes; with force, read again first unless that
// was done within nodeForceInterval, so that misses cost the store at most
// one read per interval.
func (s *Switch) nodes(force bool) *nodeView {
	if force {
		c := &s.cluster
		c.mu.Lock()
		if now := time.Now(); now.Sub(c.forcedAt) >= nodeForceInterval {
			c.forcedAt = now
			ctx, cancel := context.WithTimeout(s.ctx, nodeLookupTimeout)
			if err := s.refreshNodes(ctx); err != nil {
				s.storeTrouble("live nodes not read", err)
			}
			cancel()
		}
		c.mu.Unlock()
	}
	if v := s.cluster.view.Load(); v != nil {
		return v
	}
	return emptyView
}

// watchNodes keeps the view of the live nodes fresh and this node's
// address published until the switch stops.
func (s *Switch) watchNodes() {
	defer s.wg.Done()
	s.every(nodeRefreshInterval, func() {
		ctx, cancel := context.WithTimeout(s.ctx, nodeRefreshInterval)
		if !s.cluster.published.Load() {
			s.publishAddr(ctx)
		}
		if err := s.refreshNodes(ctx); err != nil {
			s.storeTrouble("live nodes not read", err)
		}
		cancel()
	})
}

// clustered reports whether another node is alive: only then can a user
// have a binding this node does not hold.
func (s *Switch) clustered() bool { return len(s.nodes(false).byAddr) > 0 }

// Peers returns the other live nodes, by ID, with their SIP addresses, as
// this node last read them.
func (s *Switch) Peers() map[string]string {
	out := maps.Clone(s.nodes(false).addrOf)
	delete(out, s.opts.Store.NodeID())
	return out
}

// nodeAddr is the SIP address of the live node id.
func (s *Switch) nodeAddr(id string) (string, bool) {
	if a, ok := s.nodes(false).addrOf[id]; ok {
		return a, true
	}
	a, ok := s.nodes(true).addrOf[id]
	return a, ok
}

// fromNode returns the node that sent req: its hopHeader names a live node
// and it came from that node's published address over UDP.
func (s *Switch) fromNode(req *sip.Request) (string, bool) { return s.nodeOf(req, true) }

// nodeOf is fromNode; with refresh false, a source the cached node view
// does not know is not looked up in the store.
func (s *Switch) nodeOf(req *sip.Request, refresh bool) (string, bool) {
	h := req.GetHeader(hopHeader)
	if h == nil || !strings.EqualFold(req.Transport(), "UDP") {
		return "", false
	}
	id, _, _ := strings.Cut(h.Value(), ";")
	id = strings.TrimSpace(id)
	src := normAddr(req.Source())
	if id == "" || src == "" {
		return "", false
	}
	if s.nodes(false).byAddr[src] == id {
		return id, true
	}
	if !refresh {
		return id, false
	}
	// A node that started a moment ago may not be in the view yet.
	return id, s.nodes(true).byAddr[src] == id
}

// hopUser is the user the sending node authenticated, "" for another
// caller (a trunk's). Read it only after fromNode.
func hopUser(req *sip.Request) string {
	h := req.GetHeader(hopHeader)
	if h == nil {
		return ""
	}
	_, params, _ := strings.Cut(h.Value(), ";")
	for p := range strings.SplitSeq(params, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "user") {
			return v
		}
	}
	return ""
}

// hopValue is the hopHeader this node sends for caller.
func (s *Switch) hopValue(caller party) string {
	v := s.opts.Store.NodeID()
	if caller.user != nil {
		v += ";user=" + caller.user.Name
	}
	return v
}

// nodeTarget is the live node id as a place to ring u: the INVITE goes to
// the node, marked, and the node rings u's phones it holds.
func (s *Switch) nodeTarget(id string, u *User, caller party) (target, bool) {
	addr, ok := s.nodeAddr(id)
	if !ok {
		return target{}, false
	}
	uri := sip.Uri{Scheme: "sip", User: u.Name, Host: s.opts.Domain}
	return target{uri: uri, to: uri, toName: u.DisplayName, dest: addr, transport: "UDP", user: u, hop: s.hopValue(caller)}, true
}

// remoteTargets reads u's bindings in the store and returns one target per
// other live node holding some.
func (s *Switch) remoteTargets(ctx context.Context, u *User, caller party) []target {
	if !s.clustered() {
		return nil
	}
	bs, err := s.opts.Store.Bindings(ctx, strings.ToLower(u.Name))
	if err != nil {
		s.storeTrouble("bindings on other nodes not read", err)
		return nil
	}
	self := s.opts.Store.NodeID()
	seen := make(map[string]bool)
	var ts []target
	for _, b := range bs {
		if b.Node == "" || b.Node == self || seen[b.Node] {
			continue
		}
		seen[b.Node] = true
		if t, ok := s.nodeTarget(b.Node, u, caller); ok {
			ts = append(ts, t)
		}
	}
	return ts
}

// normAddr writes a host:port the way addresses are compared here, ""
// when it is not an IP address and port.
func normAddr(a string) string {
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}
