package sip

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/store"
)

// T1 and T2 are the RFC 3261 §17 timer values the switch uses for its own
// 2xx retransmissions.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

// party is who placed a call: an authenticated user or a trunk.
type party struct {
	user    *User
	trunk   *Trunk
	node    string // the node that sent the call on (cluster.go); user is then its caller, if a user
	name    string // user part shown to the callee
	display string
}

// target is one place an outbound leg rings.
type target struct {
	uri       sip.Uri // Request-URI
	to        sip.Uri // To address
	toName    string
	dest      string // host:port
	transport string
	user      *User  // the user rung; nil for a trunk
	hop       string // hopHeader value when the target is another node
}

// call is one B2BUA call: the caller's leg a, and once answered the
// callee's leg b. Before the answer, b is one of several forks.
type call struct {
	s   *Switch
	id  string
	log zerolog.Logger

	epA, epB *media.Endpoint // the first two anchors; owned by the call, closed when it ends

	// inviting holds a token while an INVITE transaction is in progress
	// on the call: a phone's crossing re-INVITE gets 491 (RFC 3261 §14.1),
	// the switch's own re-INVITEs (park, retrieve) wait their turn.
	inviting chan struct{}

	mu         sync.Mutex
	a, b       *leg // the two sides; a parked call has one of them released
	forks      []*leg
	released   []*leg            // legs parked away and replaced by a retriever
	eps        []*media.Endpoint // anchors added since (retrievers, ringback answerers)
	answeredAt time.Time
	stopMusic  func()     // detaches music on hold
	xfer       *leg       // the transferor while its blind transfer rings (transfer.go), or its attended transfer joins (attended.go)
	consult    *consult   // set for a call to the park address (consult.go); never changes
	invite     *ringing   // the caller's INVITE while the callee rings (semiattended.go)
	saveLater  park.Timer // stores the answered call's dialogs (saveDialogsLater)

	// For events and the call record.
	from, to  store.Party       // the caller, and what it dialed
	startedAt time.Time         // accepted for routing
	parkRec   *store.ParkRecord // the call's last park
	parkOf    *park.Orbit       // the orbit parkRec is of

	endOnce sync.Once
	done    chan struct{} // closed when the call has ended
}

// onInvite handles a dialog-creating INVITE; re-INVITEs go to their leg.
func (s *Switch) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.onInDialog(req, tx)
		return
	}
	if s.dialogs.retransmitted(req) {
		s.log.Debug().Str("call_id", req.CallID().Value()).Msg("late copy of an answered INVITE dropped")
		return
	}
	if code, phrase, hdr := checkInviteBody(req); code != 0 {
		res := s.response(req, code, phrase)
		if hdr != nil {
			res.AppendHeader(hdr)
		}
		s.respondOnce(tx, res) // not authenticated yet: sent once
		return
	}
	caller, ok := s.identify(req, tx)
	if !ok {
		return
	}
	// Only now: a 100 to an unverified source would double what it draws.
	s.respond(tx, s.response(req, sip.StatusTrying, ""))
	if s.inviteFeature(req, tx, caller) {
		return // Replaces, or a call to the park address (consult.go)
	}
	// A retrieve comes from a phone, or from another node on behalf of the
	// user it authenticated (retrieveElsewhere); that node's is not passed
	// on again.
	if caller.user != nil {
		if code, ok := s.parkCode(req.Recipient.User); ok {
			if _, isUser := s.dir.Load().Dialed(req.Recipient.User); !isUser {
				s.retrieve(req, tx, caller, code)
				return
			}
		}
	}
	targets, later, code := s.route(req, caller)
	if code != 0 {
		s.metrics.refused.WithLabelValues(reasonLabel(code)).Inc()
		s.reply(req, tx, code, "")
		return
	}
	s.placeCall(req, tx, caller, targets, later)
}

// placeCall sets up the call of a dialog-creating INVITE, already
// answered 100, and rings targets, and those later returns (nil: none),
// which may be other nodes (nodeTarget).
func (s *Switch) placeCall(req *sip.Request, tx sip.ServerTransaction, caller party, targets []target, later func(context.Context) []target) {
	var offer *media.Session // nil: a delayed offer (RFC 3261 §13.2.1)
	var desc *media.Description
	if len(req.Body()) > 0 {
		var err error
		if offer, err = media.ParseSession(req.Body(), mayUseSDES(req.Transport())); err != nil {
			s.reply(req, tx, sip.StatusNotAcceptableHere, truncate(err.Error(), 80))
			return
		}
		desc = &offer.Description
	}
	c, err := s.newCall(req, caller, desc)
	if err != nil {
		s.log.Warn().Err(err).Str("call_id", req.CallID().Value()).Msg("cannot set up media")
		s.metrics.refused.WithLabelValues("no_media_ports").Inc()
		s.reply(req, tx, sip.StatusServiceUnavailable, "No media ports")
		return
	}
	c.connect(req, tx, caller, offer, targets, later)
}

// checkInviteBody refuses an INVITE whose body the switch cannot use
// before any work is done. No body at all is a delayed offer, which works.
func checkInviteBody(req *sip.Request) (int, string, sip.Header) {
	if len(req.Body()) == 0 {
		return 0, "", nil
	}
	if !isSDPContent(req) {
		return sip.StatusUnsupportedMediaType, "", sip.NewHeader("Accept", "application/sdp")
	}
	return 0, "", nil
}

// identify decides who is calling: another node or a trunk by its source
// address, otherwise a user by digest (407). It answers the request itself
// when it returns false.
func (s *Switch) identify(req *sip.Request, tx sip.ServerTransaction) (party, bool) {
	from := req.From()
	if id, ok := s.fromNode(req); ok {
		p := party{node: id, name: from.Address.User, display: from.DisplayName}
		if u, ok := s.dir.Load().UserByName(hopUser(req)); ok {
			p.user = u
		}
		return p, true
	}
	if ap, err := netip.ParseAddrPort(req.Source()); err == nil {
		if t, ok := s.dir.Load().TrunkFrom(ap.Addr()); ok {
			return party{trunk: t, name: from.Address.User, display: from.DisplayName}, true
		}
	}
	u := s.authenticate(req, tx, true)
	if u == nil {
		return party{}, false
	}
	display := u.DisplayName
	if display == "" {
		display = from.DisplayName
	}
	return party{user: u, name: u.Name, display: display}, true
}

// route maps the Request-URI to the places to ring, or a status to refuse
// with. A trunk reaches users only: never a feature, never another trunk;
// another node reaches the phones this node holds, nothing else. A user's
// phones on other nodes are found in the store: while this node holds
// some, they ring at once and later adds the other nodes' (the call does
// not wait on the store); otherwise the store is read first.
func (s *Switch) route(req *sip.Request, caller party) ([]target, func(context.Context) []target, int) {
	return s.routeDialed(req.Recipient.User, caller)
}

// routeDialed is route for the user part dialed (also a transfer target).
func (s *Switch) routeDialed(dialed string, caller party) ([]target, func(context.Context) []target, int) {
	if dialed == "" {
		return nil, nil, sip.StatusNotFound
	}
	dir := s.dir.Load()
	if u, ok := dir.Dialed(dialed); ok {
		if caller.user != nil && strings.EqualFold(u.Name, caller.user.Name) {
			return nil, nil, sip.StatusLoopDetected // calling oneself would fork back to the caller
		}
		if caller.node != "" {
			ts := s.heldTargets(u)
			if len(ts) == 0 {
				return nil, nil, sip.StatusTemporarilyUnavailable
			}
			return ts, nil, 0
		}
		if ts := s.targetsOf(u); len(ts) > 0 {
			if !s.clustered() {
				return ts, nil, 0
			}
			return ts, func(ctx context.Context) []target { return s.remoteTargets(ctx, u, caller) }, 0
		}
		ctx, cancel := context.WithTimeout(s.ctx, remoteLookupTimeout)
		defer cancel()
		if ts := s.remoteTargets(ctx, u, caller); len(ts) > 0 {
			return ts, nil, 0
		}
		return nil, nil, sip.StatusTemporarilyUnavailable
	}
	if caller.user != nil && caller.node == "" {
		if t, number, ok := dir.TrunkFor(dialed); ok {
			uri := sip.Uri{Scheme: "sip", User: number, Host: t.Address.Addr().String(), Port: int(t.Address.Port())}
			return []target{{uri: uri, to: uri, dest: t.Address.String(), transport: strings.ToUpper(t.Transport)}}, nil, 0
		}
	}
	return nil, nil, sip.StatusNotFound
}

// newCall allocates the call's two media anchors and its caller leg.
func (s *Switch) newCall(req *sip.Request, caller party, offer *media.Description) (*call, error) {
	epA, err := s.opts.Ports.Open()
	if err != nil {
		return nil, err
	}
	epB, err := s.opts.Ports.Open()
	if err != nil {
		epA.Close()
		return nil, err
	}
	id := req.CallID().Value()
	c := &call{
		s: s, id: id, epA: epA, epB: epB, done: make(chan struct{}), inviting: make(chan struct{}, 1),
		log: s.log.With().Str("call_id", id).Logger(), startedAt: s.opts.Now(),
	}
	a := s.inboundLeg(c, req, caller.user, epA)
	c.a = a
	if offer != nil {
		a.setRemoteMedia(*offer)
	}
	c.from, c.to = store.Party(s.partyOf(a)), s.dialedParty(req.Recipient.User)
	if !s.addCall(c) {
		epA.Close()
		epB.Close()
		return nil, errors.New("switch is shutting down")
	}
	s.metrics.calls.Inc()
	s.publish(store.Event{Type: store.EventCallStarted, At: c.startedAt, CallID: id, From: c.from, To: c.to})
	return c, nil
}

// inboundLeg builds the leg of a dialog-creating INVITE we answer (the
// switch is the UAS), anchored on ep.
func (s *Switch) inboundLeg(c *call, req *sip.Request, user *User, ep *media.Endpoint) *leg {
	from, to := req.From(), req.To()
	ftag, _ := from.Params.Get("tag")
	l := &leg{
		s: s, c: c, role: roleCaller, part: partCaller, startedAt: s.opts.Now(),
		callID: req.CallID().Value(), localTag: s.toTag(req), remoteTag: ftag, user: user,
		local: *to.Address.Clone(), localName: to.DisplayName,
		remote: *from.Address.Clone(), remoteName: from.DisplayName,
		remoteCSeq: req.CSeq().SeqNo,
		transport:  strings.ToUpper(req.Transport()),
		sips:       isSIPS(req),
		dest:       flowOf(req),
		sdes:       mayUseSDES(req.Transport()),
		ep:         ep,
		sdp:        media.NewSDPWriter(s.opts.AdvertiseIP),
		acked:      make(chan struct{}),
		gone:       make(chan struct{}),
	}
	l.srtpKey = s.newKey(l.sdes)
	if ct := req.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	} else {
		l.remoteTarget = *from.Address.Clone()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			l.routeSet = append(l.routeSet, *rr.Address.Clone())
		}
	}
	return l
}

// forkResult is what one outbound fork reports to the side waiting for it.
type forkResult struct {
	leg *leg
	res *sip.Response // nil with err set when the transaction failed
	err error
}

// raceResult is how ringing a set of forks ended.
type raceResult struct {
	winner *leg          // the fork that answered, nil otherwise
	answer *sip.Response // its 2xx
	status int           // when nobody answered: the status that says most (0 when ctx ended)
}

// race rings every target in parallel with offerFor's body for each fork
// (nil: a delayed offer; offerFor records it as the fork's sent SDP), and
// those later returns once it has (nil: none), and returns the first 2xx,
// or the best failure once every fork has failed, or nothing when ctx ends
// first. Losing forks are CANCELled, and answers that arrive too late are
// hung up. onProvisional sees ringing and early media while it lasts.
func (c *call) race(ctx context.Context, caller party, targets []target, later func(context.Context) []target, w *media.SDPWriter, ep *media.Endpoint, offerFor func(*leg) []byte, onProvisional func(*leg, *sip.Response)) raceResult {
	s := c.s
	events := make(chan forkResult)
	decided := make(chan struct{})
	ringCtx, stopRinging := context.WithCancel(ctx)
	defer stopRinging()
	defer close(decided)

	// The forks share one endpoint, so one key serves those that may use
	// SDES.
	var key *media.Key
	pending, best := 0, 0
	start := func(ts []target) {
		for _, t := range ts {
			if key == nil && mayUseSDES(t.transport) {
				key = s.newKey(true)
			}
		}
		c.mu.Lock()
		forks := make([]*leg, 0, len(ts))
		for _, t := range ts {
			forks = append(forks, c.newFork(caller, t, w, ep, key))
		}
		c.forks = append(c.forks, forks...)
		c.mu.Unlock()
		for _, f := range forks {
			s.dialogs.add(f)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c.ring(ringCtx, f, offerFor(f), events, decided)
			}()
		}
		pending += len(forks)
	}
	more := c.s.lookup(ringCtx, later)
	start(targets)
	for pending > 0 || more != nil {
		select {
		case ts := <-more:
			more = nil
			start(ts)
		case ev := <-events:
			switch res := ev.res; {
			case res == nil:
				best = betterFailure(best, sip.StatusTemporarilyUnavailable)
				pending--
			case res.StatusCode == sip.StatusTrying:
			case res.IsProvisional():
				if onProvisional != nil {
					onProvisional(ev.leg, res)
				}
			case res.IsSuccess():
				return raceResult{winner: ev.leg, answer: res}
			default:
				c.dropFork(ev.leg)
				best = betterFailure(best, res.StatusCode)
				pending--
				if res.IsGlobalError() {
					// A global failure ends the search (RFC 3261 §16.7).
					return raceResult{status: best}
				}
			}
		case <-ctx.Done():
			return raceResult{}
		}
	}
	return raceResult{status: best}
}

// lookup runs later in the background, bounded by remoteLookupTimeout and
// ctx, and delivers its targets on the returned channel; nil for no later.
func (s *Switch) lookup(ctx context.Context, later func(context.Context) []target) <-chan []target {
	if later == nil {
		return nil
	}
	more := make(chan []target, 1) // never blocks the lookup
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		lctx, cancel := context.WithTimeout(ctx, remoteLookupTimeout)
		defer cancel()
		more <- later(lctx)
	}()
	return more
}

// connect rings every target in parallel and relays the outcome to the
// caller. It returns once the caller has its final response and, for a
// 2xx, its ACK, which is what sipgo needs before the transaction ends.
func (c *call) connect(req *sip.Request, tx sip.ServerTransaction, caller party, offer *media.Session, targets []target, later func(context.Context) []target) {
	s := c.s
	bSDP := media.NewSDPWriter(s.opts.AdvertiseIP)
	// A delayed offer stays so: the callees offer in their 2xx. Otherwise
	// each fork gets the caller's offer with its own keying (SRTP only to
	// forks over TLS, with the switch's key).
	offerFor := func(*leg) []byte { return nil }
	if offer != nil {
		// The offer rewritten once here proves it can be, and serves every
		// fork keyed the same (plain RTP): the forks share bSDP and epB.
		plain := media.Keying{FromSDES: c.a.sdes}
		body, err := bSDP.RewriteSession(offer, int(c.epB.Addr().Port()), "", plain)
		if err != nil {
			s.respond(tx, s.response(req, sip.StatusNotAcceptableHere, ""))
			c.end(endBadOffer, nil)
			return
		}
		offerFor = func(f *leg) []byte {
			if f.keying(c.a) == plain {
				f.rewrote(body, offer.FormatsFor(plain), c.a)
				return body
			}
			keyed, err := f.localSDPOf(offer, "", c.a)
			if err != nil {
				return nil // cannot happen: the same body was just rewritten
			}
			return keyed
		}
	}
	c.log.Info().Str("from", caller.name).Str("to", req.Recipient.User).Int("forks", len(targets)).Msg("call")

	// sipgo answers a CANCEL itself (200, then 487); the transaction then
	// lingers for the ACK, so learn of the CANCEL from its callback.
	ctx, stop := context.WithTimeout(s.ctx, s.opts.NoAnswerTimeout)
	defer stop()
	ring := c.startRinging(req, tx, stop)
	cancelled := make(chan struct{})
	callerGone := func() {
		close(cancelled)
		if ring.callerLeft() { // a semi-attended transfer rings on without the caller
			stop()
		}
	}
	// sipgo calls OnCancel's func holding the transaction's lock, which
	// a provisional relayed under ring's lock waits for: the func only
	// signals, and the watcher below takes ring's lock.
	cancel := make(chan struct{})
	var cancelOnce sync.Once
	signal := func() { cancelOnce.Do(func() { close(cancel) }) }
	if !tx.OnCancel(func(*sip.Request) { signal() }) {
		signal() // cancelled already
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-cancel:
			callerGone()
		case <-tx.Done(): // the transaction died under us (a closed TCP connection)
			callerGone()
		case <-c.done:
			stop()
		case <-ctx.Done():
		}
	}()

	r := c.race(ctx, caller, targets, later, bSDP, c.epB, offerFor, func(f *leg, res *sip.Response) {
		ring.relay(func() { c.relayProvisional(req, tx, f, res) })
	})
	if t := ring.decide(); t != nil {
		c.handOver(t, r)
		return
	}
	switch {
	case r.winner != nil:
		c.answered(req, tx, r.winner, r.answer)
	case isClosed(cancelled):
		c.log.Info().Msg("caller cancelled")
		c.end(endCancelled, nil)
	case isClosed(c.done):
		s.respond(tx, s.response(req, sip.StatusServiceUnavailable, ""))
	default:
		code := r.status
		if code == 0 {
			code = sip.StatusTemporarilyUnavailable // nobody answered in time
		}
		s.respond(tx, s.response(req, code, ""))
		c.log.Info().Int("status", code).Msg("call not answered")
		c.end(endNotAnswered, nil)
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// newFork builds the outbound leg for one target.
func (c *call) newFork(caller party, t target, w *media.SDPWriter, ep *media.Endpoint, key *media.Key) *leg {
	s := c.s
	host := s.opts.Domain
	f := &leg{
		s: s, c: c, role: roleCallee, part: partCallee, startedAt: s.opts.Now(),
		callID:    sip.GenerateTagN(24),
		localTag:  sip.GenerateTagN(16),
		local:     sip.Uri{Scheme: "sip", User: caller.name, Host: host},
		localName: caller.display,
		remote:    t.to, remoteName: t.toName,
		remoteTarget: t.uri,
		localCSeq:    0,
		transport:    t.transport,
		dest:         t.dest,
		user:         t.user,
		hop:          t.hop,
		ep:           ep,
		sdp:          w,
		gone:         make(chan struct{}),
	}
	if f.transport == "" {
		f.transport = "UDP"
	}
	f.sips = strings.EqualFold(t.uri.Scheme, "sips")
	if f.sdes = mayUseSDES(f.transport); f.sdes {
		f.srtpKey = key
	}
	return f
}

// ring sends the INVITE of one fork and reports its responses until a final
// one. When ctx ends first it CANCELs (after a provisional, RFC 3261 §9.1).
func (c *call) ring(ctx context.Context, f *leg, body []byte, events chan<- forkResult, decided <-chan struct{}) {
	s := c.s
	req := f.newRequest(sip.INVITE, 0)
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if f.hop != "" {
		req.AppendHeader(sip.NewHeader(hopHeader, f.hop))
	}
	if len(body) > 0 {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetBody(body)
	// The transaction outlives ctx: cancelling it must send CANCEL, not
	// abandon the transaction.
	txCtx, cancelTx := context.WithTimeout(context.Background(), s.opts.NoAnswerTimeout+32*time.Second)
	defer cancelTx()
	tx, err := s.transaction(txCtx, req)
	if err != nil {
		c.log.Warn().Err(err).Str("leg", "b").Str("dest", f.dest).Msg("cannot send INVITE")
		c.report(forkResult{leg: f, err: err}, events, decided)
		return
	}
	defer tx.Terminate()
	provisional, cancelled := false, false
	cancelDone := ctx.Done()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				provisional = true
				if ctx.Err() != nil {
					// Cancelled before any provisional: CANCEL now.
					if !cancelled {
						cancelled = true
						s.cancelInvite(req)
					}
					continue
				}
				c.report(forkResult{leg: f, res: res}, events, decided)
				continue
			}
			if res.IsSuccess() {
				// With a delayed offer the 2xx carries the callee's offer
				// and our ACK must carry the answer, which only the caller
				// can give: answered sends that ACK.
				late := len(body) == 0
				f.confirmDialog(req, res, !late)
				if !c.report(forkResult{leg: f, res: res}, events, decided) {
					// Another fork won or the caller left: this answer is
					// surplus. ACK and hang it up (RFC 3261 §13.2.2.4); a
					// delayed offer is answered with its own SDP first.
					if late {
						f.sendAck(f.sdpAnswerEcho(res.Body()))
					}
					c.hangupSurplus(f)
				}
				return
			}
			c.report(forkResult{leg: f, res: res}, events, decided)
			return
		case <-tx.Done():
			c.report(forkResult{leg: f, err: tx.Err()}, events, decided)
			return
		case <-cancelDone:
			cancelDone = nil
			if provisional {
				cancelled = true
				s.cancelInvite(req)
			}
		}
	}
}

// report hands a fork result to connect, or returns false when connect has
// already decided the call.
func (c *call) report(r forkResult, events chan<- forkResult, decided <-chan struct{}) bool {
	select {
	case events <- r:
		return true
	case <-decided:
		if r.res == nil || r.res.StatusCode >= 300 {
			c.dropFork(r.leg)
		}
		return false
	}
}

// cancelInvite sends CANCEL for an INVITE we sent (RFC 3261 §9.1): same
// Request-URI, Call-ID, From, To, CSeq number and top Via.
func (s *Switch) cancelInvite(inv *sip.Request) {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(h))
	}
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	s.addressRequest(req, inv.Transport(), inv.Destination())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// The switch's context: a shutdown ends the wait for the CANCEL's
		// 200 before the transports close, rather than 32 s after.
		ctx, cancel := context.WithTimeout(s.ctx, 32*time.Second)
		defer cancel()
		if _, err := s.do(ctx, req); err != nil {
			s.log.Debug().Err(err).Str("call_id", inv.CallID().Value()).Msg("CANCEL failed")
		}
	}()
}

// confirmDialog completes the outbound leg's dialog from the 2xx and, when
// ack is set, ACKs it; otherwise the ACK is prepared for sendAck.
func (l *leg) confirmDialog(inv *sip.Request, res *sip.Response, ack bool) {
	l.mu.Lock()
	l.remoteTag, _ = res.To().Params.Get("tag")
	if ct := res.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	}
	l.routeSet = l.routeSet[:0]
	rrs := res.GetHeaders("Record-Route")
	for i := len(rrs) - 1; i >= 0; i-- {
		if rr, ok := rrs[i].(*sip.RecordRouteHeader); ok {
			l.routeSet = append(l.routeSet, *rr.Address.Clone())
		}
	}
	l.confirmed = true
	l.answeredLocked()
	l.inviteCSeq = inv.CSeq().SeqNo
	l.mu.Unlock()
	if ack {
		l.sendAck(nil)
	}
}

// sendAck ACKs the leg's answered INVITE, with body as the SDP answer to
// a delayed offer (nil otherwise), and keeps the ACK for retransmitted 2xx.
func (l *leg) sendAck(body []byte) {
	l.mu.Lock()
	seq := l.inviteCSeq
	l.mu.Unlock()
	ack := l.newRequest(sip.ACK, seq)
	if len(body) > 0 {
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	ack.SetBody(body)
	l.mu.Lock()
	l.ackReq = ack
	l.mu.Unlock()
	if err := l.s.writeAck(ack); err != nil {
		l.callOf().log.Debug().Err(err).Str("leg", l.String()).Msg("ACK failed")
	}
}

// sdpAnswerEcho answers an offer the switch will not use (a surplus fork's
// delayed offer, just before its BYE) with the same media on our anchor.
func (l *leg) sdpAnswerEcho(offer []byte) []byte {
	out, err := l.localSDP(offer, "", l)
	if err != nil {
		return nil
	}
	return out
}

// hangupSurplus ends a fork that answered after the call was decided.
func (c *call) hangupSurplus(f *leg) {
	c.dropFork(f)
	c.s.bye(f)
}

// dropFork forgets a fork that will not become the call's b leg.
func (c *call) dropFork(f *leg) {
	c.mu.Lock()
	c.forks = slices.DeleteFunc(c.forks, func(x *leg) bool { return x == f })
	c.mu.Unlock()
	c.s.dialogs.remove(f)
}

// relayProvisional passes ringing and early media on to the caller.
func (c *call) relayProvisional(req *sip.Request, tx sip.ServerTransaction, f *leg, res *sip.Response) {
	code := res.StatusCode
	if code != sip.StatusSessionInProgress && code != sip.StatusRinging {
		code = sip.StatusRinging
	}
	out := c.s.response(req, code, "")
	out.AppendHeader(c.s.contact(c.a.local.User, c.a))
	if len(res.Body()) > 0 {
		if d, err := f.parseSession(res.Body()); err == nil {
			f.setRemoteMedia(d.Description)
			media.Bridge(c.epA, c.epB)
			if body, err := c.a.localSDPOf(d, "", f); err == nil {
				out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
				out.SetBody(body)
			}
		}
	}
	c.s.respond(tx, out)
}

// answered makes f the call's b leg, answers the caller with 200 and waits
// for the caller's ACK, retransmitting the 2xx over UDP (RFC 3261 §13.3.1.4).
func (c *call) answered(req *sip.Request, tx sip.ServerTransaction, f *leg, res *sip.Response) {
	s := c.s
	answer, err := f.parseSession(res.Body())
	if err != nil {
		c.log.Warn().Err(err).Msg("callee answer has no usable SDP")
		s.respond(tx, s.response(req, sip.StatusNotAcceptableHere, ""))
		c.mu.Lock()
		c.b = f
		c.mu.Unlock()
		c.end(endBadAnswer, nil)
		return
	}
	f.setRemoteMedia(answer.Description)
	body, err := c.a.localSDPOf(answer, "", f)
	if err != nil {
		s.respond(tx, s.response(req, sip.StatusInternalServerError, ""))
		c.mu.Lock()
		c.b = f
		c.mu.Unlock()
		c.end(endBadAnswer, nil)
		return
	}
	c.mu.Lock()
	c.b = f
	c.answeredAt = s.opts.Now()
	losers := slices.DeleteFunc(slices.Clone(c.forks), func(x *leg) bool { return x == f })
	c.forks = nil
	c.mu.Unlock()
	s.publish(store.Event{Type: store.EventCallAnswered, At: c.answeredAt, CallID: c.id, From: c.from, To: store.Party(s.partyOf(f))})
	for _, l := range losers {
		s.dialogs.remove(l)
	}
	media.Bridge(c.epA, c.epB)
	s.dialogs.add(c.a)

	c.log.Info().Str("leg", "b").Str("callee", f.remote.User).Msg("answered")
	late := len(req.Body()) == 0
	if !s.answer(req, tx, c.a, body) {
		if late {
			f.sendAck(f.sdpAnswerEcho(res.Body())) // then BYE, in end
		}
		c.log.Info().Msg("no ACK from caller: ending call")
		c.end(endNoACK, nil)
		return
	}
	s.saveDialogsLater(c, c.a, f)
	if late {
		// The caller's ACK carried its answer: pass it on in our ACK.
		c.a.mu.Lock()
		answer := c.a.ackSDP
		c.a.mu.Unlock()
		out, err := f.localSDP(answer, "", c.a)
		if err != nil {
			f.sendAck(f.sdpAnswerEcho(res.Body()))
			c.log.Warn().Err(err).Msg("caller's ACK has no usable SDP answer")
			c.end(endBadAnswer, nil)
			return
		}
		f.sendAck(out)
	}
}

// answer sends l's 200 to req with body, the leg's Contact and the
// methods allowed, and waits for its ACK; it reports whether the ACK came.
func (s *Switch) answer(req *sip.Request, tx sip.ServerTransaction, l *leg, body []byte) bool {
	res := s.sdpResponse(req, body)
	res.AppendHeader(s.contact(l.local.User, l))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	return l.sendAnswer(tx, res)
}

// sendAnswer sends a 2xx on the leg's INVITE transaction and waits for its
// ACK, retransmitting over UDP. It reports whether the ACK came.
func (l *leg) sendAnswer(tx sip.ServerTransaction, ok *sip.Response) bool {
	l.mu.Lock()
	acked, done := l.acked, l.c.done
	l.answered = true
	l.answeredLocked()
	l.mu.Unlock()
	l.s.respond(tx, ok)
	interval := timerT1
	deadline := time.NewTimer(64 * timerT1)
	defer deadline.Stop()
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	reliable := l.transport != "UDP"
	for {
		select {
		case <-acked:
			l.mu.Lock()
			l.confirmed = true
			l.mu.Unlock()
			return true
		case <-done:
			return true
		case <-deadline.C:
			return false
		case <-retransmit.C:
			if !reliable {
				l.s.respond(tx, ok)
			}
			interval = min(2*interval, timerT2)
			retransmit.Reset(interval)
		}
	}
}

// other returns the leg bridged to l, nil while l is parked or released.
func (c *call) other(l *leg) *leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var o *leg
	switch l {
	case c.a:
		o = c.b
	case c.b:
		o = c.a
	}
	if o == nil || o.isReleased() || l.isReleased() {
		return nil
	}
	return o
}

// CallID identifies the call to the park lot.
func (c *call) CallID() string { return c.id }

// end tears the call down once: BYE to every answered leg except the one
// that hung up, dialogs forgotten, media ports returned.
func (c *call) end(why endReason, from *leg) {
	c.endOnce.Do(func() { c.finish(why, from) })
	if from != nil {
		if nc := from.callOf(); nc != c {
			// An attended transfer moved the leg into another call while
			// its BYE was on the way (absorb): that call ends.
			nc.end(why, from)
		}
	}
}

// finish is the body of end; it needs endOnce.
func (c *call) finish(why endReason, from *leg) {
	legs := c.teardown(from, nil)
	c.s.lot.Hangup(c) // frees the code and the ringback at once, if parked
	c.s.recordEnd(c, why, legs)
	c.s.metrics.callsEnded.WithLabelValues(why.label).Inc()
	c.log.WithLevel(why.level()).Str("reason", why.text).Msg("call ended")
}

// teardown is the common part of end and leave; it needs endOnce. It
// closes c.done, stops the music, sends BYE on every answered leg but from
// and keep, forgets every leg but keep here and in the store (keep stays
// in the store, for whoever takes the call up), returns the media ports
// and removes the call. It returns the legs.
func (c *call) teardown(from, keep *leg) []*leg {
	c.mu.Lock()
	legs := append([]*leg{c.a}, c.released...)
	if c.b != nil {
		legs = append(legs, c.b)
	}
	forks := c.forks
	c.forks = nil
	eps := c.eps
	stopMusic := c.stopMusic
	c.stopMusic = nil
	if c.saveLater != nil {
		c.saveLater.Stop()
	}
	// Closed under c.mu: whoever adds a leg or an anchor checks c.done
	// under it, so nothing is added that this teardown misses.
	close(c.done)
	c.mu.Unlock()
	if stopMusic != nil {
		stopMusic()
	}
	for _, l := range legs {
		if l == keep {
			c.s.dialogs.remove(l)
			continue
		}
		l.mu.Lock()
		answered := (l.confirmed || l.answered) && !l.ended
		l.endLocked()
		l.mu.Unlock()
		if l != from && answered {
			c.s.bye(l)
		} else {
			c.s.dialogs.remove(l)
		}
		c.s.dropDialog(l)
	}
	for _, f := range forks {
		c.s.dialogs.remove(f)
	}
	c.epA.Close()
	if c.epB != nil { // nil for a call restored from the store
		c.epB.Close()
	}
	for _, ep := range eps {
		ep.Close()
	}
	c.s.removeCall(c)
	return legs
}

// bye hangs a leg up in the background, bounded in time, and then forgets
// its dialog. A leg whose 2xx is not ACKed yet waits for the ACK first: a
// UAS may not send BYE before it (RFC 3261 §15).
func (s *Switch) bye(l *leg) {
	l.mu.Lock()
	acked := l.acked
	waitAck := !l.confirmed && l.answered
	l.mu.Unlock()
	s.wg.Add(1)
	s.byes.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.byes.Done()
		defer s.dialogs.remove(l)
		defer l.markGone()
		if waitAck {
			t := time.NewTimer(64 * timerT1)
			select {
			case <-acked:
			case <-t.C:
			case <-s.ctx.Done():
			}
			t.Stop()
		}
		req := l.newRequest(sip.BYE, 0)
		req.SetBody(nil)
		ctx, cancel := context.WithTimeout(s.ctx, 32*time.Second)
		defer cancel()
		// A BYE from the phone ends the dialog too: markGone stops the
		// wait for an answer to ours (a phone that hung up may never send
		// it).
		l.mu.Lock()
		if l.gone != nil && isClosed(l.gone) {
			cancel()
		} else {
			l.stopBye = cancel
		}
		l.mu.Unlock()
		if _, err := s.do(ctx, req); err != nil {
			l.callOf().log.Warn().Err(err).Str("leg", l.String()).Msg("BYE failed")
		}
	}()
}

// mediaSilent reports whether an answered, bridged call has gone without
// RTP on a side that should be sending for longer than timeout. Silence the
// SDP explains does not count: a parked call, a leg that is released, and a
// call on hold either way (a leg whose last SDP is sendonly, recvonly or
// inactive, or has no address) are exempt. Each endpoint's clock starts over
// when it is bridged or its media renegotiated (media.Endpoint.SilentFor), so
// a leg retrieved or resumed after a long quiet spell gets a full timeout.
func (c *call) mediaSilent(now time.Time, timeout time.Duration) bool {
	c.mu.Lock()
	answered, a, b := c.answeredAt, c.a, c.b
	c.mu.Unlock()
	if answered.IsZero() || b == nil || c.s.lot.OrbitOf(c.id) != nil {
		return false
	}
	for _, l := range []*leg{a, b} {
		if !l.expectsMedia() {
			return false
		}
	}
	if now.Sub(answered) <= timeout {
		return false
	}
	for _, l := range []*leg{a, b} {
		if l.ep.SilentFor(now) > timeout {
			return true
		}
	}
	return false
}

// betterFailure picks the status to give the caller when no fork answered:
// busy and decline say more than a timeout; a callee's 5xx means only that
// this callee is unavailable.
func betterFailure(cur, code int) int {
	rank := func(c int) int {
		switch {
		case c >= 600:
			return 5
		case c == sip.StatusBusyHere:
			return 4
		case c >= 400 && c < 500 && c != sip.StatusRequestTimeout && c != sip.StatusRequestTerminated && c != sip.StatusTemporarilyUnavailable:
			return 3
		case c == sip.StatusTemporarilyUnavailable || c == sip.StatusRequestTimeout:
			return 2
		case c == 0:
			return 0
		}
		return 1
	}
	norm := func(c int) int {
		if c >= 500 && c < 600 || c == sip.StatusRequestTimeout || c == sip.StatusRequestTerminated {
			return sip.StatusTemporarilyUnavailable
		}
		if c == sip.StatusGlobalBusyEverywhere {
			return sip.StatusBusyHere
		}
		return c
	}
	if rank(code) > rank(cur) {
		return norm(code)
	}
	if cur == 0 {
		return norm(code)
	}
	return cur
}
