package sip

import (
	"context"
	"encoding/xml"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/park"
)

// Park lamps (SPEC §11): a desk phone's BLF key subscribes to the dialog
// event package (RFC 4235) of a park code and is lit while a call is parked
// there. Each subscription is a dialog of its own (RFC 6665), kept in the
// lamps table and never in dialogStore, which holds call legs.

const (
	lampEvent          = "dialog"
	lampContentType    = "application/dialog-info+xml"
	lampDefaultExpires = 3600
	lampMaxExpires     = 3600
	lampNotifyTimeout  = 32 * time.Second // Timer F: a NOTIFY nobody answers

	DefaultSubscribeMinExpires     = 60
	DefaultMaxSubscriptions        = 20000
	DefaultMaxSubscriptionsPerUser = 200
)

// Reasons of a terminated NOTIFY (RFC 6665 §4.1.3).
const (
	endTimeout     = "timeout"     // expired, un-subscribed, or a fetch
	endDeactivated = "deactivated" // the switch is stopping: subscribe again
	endRejected    = "rejected"    // the subscriber's policy no longer allows it
)

// lampKey is a park code of a policy's table (identity folded).
type lampKey struct {
	policy string
	code   int
}

// subID names a subscription dialog: its Call-ID and our tag.
type subID struct{ callID, localTag string }

// lampState is what a NOTIFY shows: the orbit at the code, if any.
type lampState struct {
	busy   bool
	since  int64 // parked at, in Unix nanoseconds: tells one park at the code from the next
	parked park.Party
}

// subscription is one park lamp. Its dialog fields are fixed when it is
// made but for target and dest (a refresh may move them); the rest is
// guarded by lamps.mu.
type subscription struct {
	id        subID
	lamp      lampKey
	user      string // folded name, for the per-user bound
	entity    string // sip:<code>@domain
	event     string // the SUBSCRIBE's Event header, echoed with its id
	remoteTag string
	local     sip.Uri // the code, as the phone addressed it
	remote    sip.Uri
	routeSet  []sip.Uri
	transport string
	sips      bool

	target     sip.Uri
	dest       string
	remoteCSeq uint32
	localCSeq  uint32
	version    int
	expires    time.Time
	timer      *time.Timer
	gen        int    // of timer, so a stale expiry does nothing
	ending     string // reason of the terminated NOTIFY to send; "" while active
	dirty      bool   // a NOTIFY is due
	force      bool   // send it even if the state did not change
	sending    bool   // run is at work on it
	sent       bool
	last       lampState
}

// lamps is the table of park lamp subscriptions.
type lamps struct {
	s       *Switch
	mu      sync.Mutex
	byID    map[subID]*subscription
	byLamp  map[lampKey]map[*subscription]struct{}
	perUser map[string]int
	closed  bool           // Shutdown began: no new subscriptions
	halted  bool           // nothing may start any more
	wg      sync.WaitGroup // senders and armed expiry timers
	view    orbitView      // every node's orbits (blf_cluster.go)
	metrics lampMetrics
}

func (b *lamps) init(s *Switch) {
	b.s = s
	b.byID = make(map[subID]*subscription)
	b.byLamp = make(map[lampKey]map[*subscription]struct{})
	b.perUser = make(map[string]int)
	b.metrics = newLampMetrics(s, s.opts.Registry)
}

// Subscriptions reports the park lamp subscriptions in force.
func (s *Switch) Subscriptions() int {
	s.lamps.mu.Lock()
	defer s.lamps.mu.Unlock()
	return len(s.lamps.byID)
}

// onSubscribe answers SUBSCRIBE: dialog-event subscriptions to park codes.
func (s *Switch) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	ev := req.GetHeader("Event")
	if ev == nil {
		s.reply(req, tx, sip.StatusBadRequest, "Missing Event")
		return
	}
	if pkg, _, _ := strings.Cut(ev.Value(), ";"); !strings.EqualFold(strings.TrimSpace(pkg), lampEvent) {
		// RFC 6665 §8.2.1.
		res := s.response(req, statusBadEvent, "")
		res.AppendHeader(sip.NewHeader("Allow-Events", lampEvent))
		s.respond(tx, res)
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.resubscribe(req, tx, tag)
		return
	}
	if !acceptsDialogInfo(req) {
		res := s.response(req, sip.StatusNotAcceptable, "")
		res.AppendHeader(sip.NewHeader("Accept", lampContentType))
		s.respond(tx, res)
		return
	}
	u := s.authenticate(req, tx, true)
	if u == nil {
		return
	}
	s.subscribeLamp(req, tx, u)
}

// subscribeLamp makes the subscription of an authenticated initial
// SUBSCRIBE, answers it and sends the first NOTIFY.
func (s *Switch) subscribeLamp(req *sip.Request, tx sip.ServerTransaction, u *User) {
	ct := req.Contact()
	if ct == nil {
		s.reply(req, tx, sip.StatusBadRequest, "Missing Contact")
		return
	}
	code, ok := s.parkCode(req.Recipient.User)
	if _, isUser := s.dir.Load().Dialed(req.Recipient.User); !ok || isUser {
		s.reply(req, tx, sip.StatusNotFound, "Not a park code")
		return
	}
	pol := s.policyOf(u)
	if !pol.AllowCallPark || !pol.InRange(code) {
		s.log.Info().Str("call_id", req.CallID().Value()).Str("user", u.Name).Str("policy", pol.Identity).Int("orbit", code).Msg("park lamp refused")
		s.reply(req, tx, sip.StatusForbidden, "Code "+strconv.Itoa(code)+" is not in the park range of policy "+pol.Identity)
		return
	}
	exp, ok := s.subscribeExpires(req, tx)
	if !ok {
		return
	}
	sub := s.newSubscription(req, u, lampKey{policy: strings.ToLower(pol.Identity), code: code})
	b := &s.lamps
	b.mu.Lock()
	if exp > 0 {
		if why := b.addLocked(sub); why != "" {
			b.mu.Unlock()
			res := s.response(req, sip.StatusServiceUnavailable, why)
			res.AppendHeader(sip.NewHeader("Retry-After", "60"))
			s.respond(tx, res)
			return
		}
		b.armLocked(sub, exp)
	} else {
		sub.ending = endTimeout // a fetch: one NOTIFY, then done
	}
	b.mu.Unlock()
	s.respond(tx, s.subscribeOK(req, sub, exp))
	s.log.Info().Str("call_id", sub.id.callID).Str("user", u.Name).Str("policy", pol.Identity).Int("orbit", code).Int("expires", exp).Msg("park lamp subscribed")
	b.mu.Lock()
	b.kickLocked(sub, true)
	b.mu.Unlock()
}

// newSubscription is the dialog an initial SUBSCRIBE from u makes.
func (s *Switch) newSubscription(req *sip.Request, u *User, key lampKey) *subscription {
	from, to := req.From(), req.To()
	ftag, _ := from.Params.Get("tag")
	sub := &subscription{
		id:   subID{callID: req.CallID().Value(), localTag: s.toTag(req)},
		lamp: key, user: strings.ToLower(u.Name),
		entity:    "sip:" + strconv.Itoa(key.code) + "@" + s.opts.Domain,
		event:     strings.TrimSpace(req.GetHeader("Event").Value()),
		remoteTag: ftag,
		local:     *to.Address.Clone(), remote: *from.Address.Clone(),
		transport:  strings.ToUpper(req.Transport()),
		sips:       isSIPS(req),
		target:     *req.Contact().Address.Clone(),
		dest:       flowOf(req),
		remoteCSeq: req.CSeq().SeqNo,
	}
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			sub.routeSet = append(sub.routeSet, *rr.Address.Clone())
		}
	}
	return sub
}

// subscribeExpires reads a SUBSCRIBE's Expires (RFC 6665 §4.2.1.1): the
// default when absent, capped, 0 to end; too brief or malformed is
// answered here.
func (s *Switch) subscribeExpires(req *sip.Request, tx sip.ServerTransaction) (int, bool) {
	h := req.GetHeader("Expires")
	if h == nil {
		return lampDefaultExpires, true
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || n < 0 {
		s.reply(req, tx, sip.StatusBadRequest, "Bad Expires")
		return 0, false
	}
	if n > 0 && n < s.opts.SubscribeMinExpires {
		res := s.response(req, sip.StatusIntervalToBrief, "")
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(s.opts.SubscribeMinExpires)))
		s.respond(tx, res)
		return 0, false
	}
	return min(n, lampMaxExpires), true
}

// subscribeOK is the 200 to a SUBSCRIBE of sub.
func (s *Switch) subscribeOK(req *sip.Request, sub *subscription, exp int) *sip.Response {
	res := s.response(req, sip.StatusOK, "")
	e := sip.ExpiresHeader(exp)
	res.AppendHeader(&e)
	res.AppendHeader(s.contact(sub.local.User, &leg{transport: sub.transport, sips: sub.sips}))
	return res
}

// resubscribe handles an in-dialog SUBSCRIBE: a refresh, or with
// Expires: 0 the end of the subscription (RFC 6665 §4.2.1.2).
func (s *Switch) resubscribe(req *sip.Request, tx sip.ServerTransaction, tag string) {
	b := &s.lamps
	ftag, _ := req.From().Params.Get("tag")
	b.mu.Lock()
	sub := b.byID[subID{callID: req.CallID().Value(), localTag: tag}]
	if sub == nil || sub.remoteTag != ftag {
		b.mu.Unlock()
		s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "")
		return
	}
	if req.CSeq().SeqNo <= sub.remoteCSeq {
		b.mu.Unlock()
		s.reply(req, tx, sip.StatusInternalServerError, "CSeq out of order")
		return
	}
	sub.remoteCSeq = req.CSeq().SeqNo
	b.mu.Unlock()
	exp, ok := s.subscribeExpires(req, tx)
	if !ok {
		return
	}
	if exp > 0 && !s.stillAllowed(sub) {
		b.mu.Lock()
		b.endLocked(sub, endRejected)
		b.mu.Unlock()
		s.reply(req, tx, sip.StatusForbidden, "")
		return
	}
	b.mu.Lock()
	if b.byID[sub.id] != sub {
		// It expired, or failed, while this request was read.
		b.mu.Unlock()
		s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "")
		return
	}
	if ct := req.Contact(); ct != nil {
		sub.target = *ct.Address.Clone()
	}
	sub.dest = flowOf(req)
	if exp == 0 {
		// The 200 goes out before the terminated NOTIFY, as for the
		// initial SUBSCRIBE: phones that expect them in that order
		// (SIPp among them) are not thrown by the race.
		b.removeLocked(sub)
		b.mu.Unlock()
		s.respond(tx, s.subscribeOK(req, sub, exp))
		b.mu.Lock()
		b.endLocked(sub, endTimeout)
	} else {
		b.armLocked(sub, exp)
		b.kickLocked(sub, true)
	}
	b.mu.Unlock()
	if exp > 0 {
		s.respond(tx, s.subscribeOK(req, sub, exp))
	}
	s.log.Debug().Str("call_id", sub.id.callID).Int("orbit", sub.lamp.code).Int("expires", exp).Msg("park lamp refreshed")
}

// stillAllowed tells whether sub's subscriber may still watch its code: a
// policy reload or a directory change may have taken it away.
func (s *Switch) stillAllowed(sub *subscription) bool {
	u, ok := s.dir.Load().UserByName(sub.user)
	if !ok {
		return false
	}
	pol := s.policyOf(u)
	return pol.AllowCallPark && pol.InRange(sub.lamp.code) && strings.EqualFold(pol.Identity, sub.lamp.policy)
}

// acceptsDialogInfo tells whether a SUBSCRIBE's Accept headers, if any,
// allow a dialog-info body.
func acceptsDialogInfo(req *sip.Request) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		for v := range strings.SplitSeq(h.Value(), ",") {
			mt, _, _ := strings.Cut(v, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case lampContentType, "application/*", "*/*":
				return true
			}
		}
	}
	return false
}

// addLocked puts sub in the table, or says why not (the bounds).
func (b *lamps) addLocked(sub *subscription) string {
	s := b.s
	switch {
	case b.closed:
		return "Shutting down"
	case len(b.byID) >= s.opts.MaxSubscriptions:
		return "Too many subscriptions"
	case b.perUser[sub.user] >= s.opts.MaxSubscriptionsPerUser:
		return "Too many subscriptions for this user"
	}
	if old := b.byID[sub.id]; old != nil {
		// The phone started over on the same Call-ID and tag.
		b.removeLocked(old)
	}
	b.byID[sub.id] = sub
	set := b.byLamp[sub.lamp]
	if set == nil {
		set = make(map[*subscription]struct{})
		b.byLamp[sub.lamp] = set
	}
	set[sub] = struct{}{}
	b.perUser[sub.user]++
	return ""
}

// removeLocked takes sub out of the table and disarms its expiry. A
// NOTIFY still due (the terminated one) is sent all the same.
func (b *lamps) removeLocked(sub *subscription) {
	if b.byID[sub.id] != sub {
		return
	}
	delete(b.byID, sub.id)
	if set := b.byLamp[sub.lamp]; set != nil {
		delete(set, sub)
		if len(set) == 0 {
			delete(b.byLamp, sub.lamp)
		}
	}
	if b.perUser[sub.user]--; b.perUser[sub.user] <= 0 {
		delete(b.perUser, sub.user)
	}
	b.disarmLocked(sub)
}

// armLocked (re)starts sub's expiry, exp seconds from now. An armed timer
// counts in wg until it fires or is stopped.
func (b *lamps) armLocked(sub *subscription, exp int) {
	b.disarmLocked(sub)
	if b.halted {
		return
	}
	d := time.Duration(exp) * time.Second
	sub.expires = time.Now().Add(d)
	sub.gen++
	gen := sub.gen
	b.wg.Add(1)
	sub.timer = time.AfterFunc(d, func() {
		defer b.wg.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		if sub.gen == gen && sub.timer != nil {
			sub.timer = nil
			b.endLocked(sub, endTimeout)
		}
	})
}

func (b *lamps) disarmLocked(sub *subscription) {
	if sub.timer != nil && sub.timer.Stop() {
		b.wg.Done()
	}
	sub.timer = nil
}

// endLocked ends sub with a terminated NOTIFY giving reason.
func (b *lamps) endLocked(sub *subscription, reason string) {
	if sub.ending != "" {
		return
	}
	sub.ending = reason
	b.removeLocked(sub)
	b.kickLocked(sub, true)
}

// kickLocked makes a NOTIFY due on sub (force: even if its state has not
// changed) and starts its sender unless one is at work. One sender per
// subscription at most, so a phone that does not answer delays its own
// lamp only.
func (b *lamps) kickLocked(sub *subscription, force bool) {
	sub.dirty = true
	sub.force = sub.force || force
	if sub.sending || b.halted {
		return
	}
	sub.sending = true
	b.wg.Add(1)
	go b.run(sub)
}

// changed is told of every change of an orbit (onParkEvent): the lamps
// of that code get a NOTIFY. It never blocks: the lot calls it.
func (b *lamps) changed(policy string, code int) {
	key := lampKey{policy: strings.ToLower(policy), code: code}
	b.mu.Lock()
	for sub := range b.byLamp[key] {
		b.kickLocked(sub, false)
	}
	b.mu.Unlock()
}

// run sends sub's NOTIFYs while one is due, the state read afresh for
// each, so that changes in quick succession coalesce into the latest.
func (b *lamps) run(sub *subscription) {
	defer b.wg.Done()
	s := b.s
	for {
		b.mu.Lock()
		if !sub.dirty || (sub.ending == "" && b.byID[sub.id] != sub) {
			sub.sending = false
			b.mu.Unlock()
			return
		}
		sub.dirty = false
		b.mu.Unlock()
		st := s.lampStateOf(sub.lamp)
		b.mu.Lock()
		if !sub.force && sub.sent && st == sub.last && sub.ending == "" {
			b.mu.Unlock()
			continue
		}
		sub.force = false
		ending := sub.ending
		req := b.notifyLocked(sub, st)
		b.mu.Unlock()

		ctx, cancel := context.WithTimeout(s.ctx, lampNotifyTimeout)
		res, err := s.do(ctx, req)
		cancel()
		b.metrics.sent(err == nil && res.IsSuccess())
		if ending != "" {
			b.mu.Lock()
			sub.sending = false
			b.mu.Unlock()
			return // the last NOTIFY of sub
		}
		if err != nil || !res.IsSuccess() {
			// RFC 6665 §4.2.2: a failed NOTIFY ends the subscription.
			ev := s.log.Info().Str("call_id", sub.id.callID).Int("orbit", sub.lamp.code)
			if err != nil {
				ev = ev.Err(err)
			} else {
				ev = ev.Int("status", res.StatusCode)
			}
			ev.Msg("park lamp NOTIFY failed: subscription ended")
			b.mu.Lock()
			b.removeLocked(sub)
			sub.sending = false
			b.mu.Unlock()
			return
		}
	}
}

// lampStateOf reads the orbit at a code: in this node's lot, else as the
// store shows it parked on another node.
func (s *Switch) lampStateOf(key lampKey) lampState {
	if o, ok := s.lot.At(key.policy, key.code); ok {
		return lampState{busy: true, since: o.ParkedAt.UnixNano(), parked: o.ParkedParty}
	}
	st, _ := s.lamps.view.state(key)
	return st
}

// notifyLocked builds sub's next NOTIFY showing st (RFC 6665 §4.2.2).
func (b *lamps) notifyLocked(sub *subscription, st lampState) *sip.Request {
	s := b.s
	req := sip.NewRequest(sip.NOTIFY, *sub.target.Clone())
	req.AppendHeader(s.via(sub.transport))
	for _, r := range sub.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	from := &sip.FromHeader{Address: *sub.local.Clone()}
	from.Params.Add("tag", sub.id.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: *sub.remote.Clone()}
	to.Params.Add("tag", sub.remoteTag)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(sub.id.callID)
	req.AppendHeader(&cid)
	sub.localCSeq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: sub.localCSeq, MethodName: sip.NOTIFY})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(s.contact(sub.local.User, &leg{transport: sub.transport, sips: sub.sips}))
	req.AppendHeader(sip.NewHeader("Event", sub.event))
	state := "terminated;reason=" + sub.ending
	if sub.ending == "" {
		left := max(0, int(time.Until(sub.expires).Round(time.Second)/time.Second))
		state = "active;expires=" + strconv.Itoa(left)
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", lampContentType))
	req.SetBody(dialogInfo(sub.version, sub.entity, st))
	sub.version++
	sub.last, sub.sent = st, true
	s.addressRequest(req, sub.transport, sub.dest)
	return req
}

// The dialog-info document of RFC 4235 §4, as much of it as a lamp needs.
type xmlDialogInfo struct {
	XMLName xml.Name    `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
	Version int         `xml:"version,attr"`
	State   string      `xml:"state,attr"`
	Entity  string      `xml:"entity,attr"`
	Dialogs []xmlDialog `xml:"dialog"`
}

type xmlDialog struct {
	ID        string       `xml:"id,attr"`
	Direction string       `xml:"direction,attr"`
	State     string       `xml:"state"`
	Remote    *xmlIdentity `xml:"remote>identity,omitempty"`
}

type xmlIdentity struct {
	Display string `xml:"display,attr,omitempty"`
	URI     string `xml:",chardata"`
}

// dialogInfo is the full-state body of a lamp's NOTIFY number version: one
// confirmed dialog, the parked call, while the code is occupied, none
// while it is free (RFC 4235 §3.7.1).
func dialogInfo(version int, entity string, st lampState) []byte {
	doc := xmlDialogInfo{Version: version, State: "full", Entity: entity}
	if st.busy {
		d := xmlDialog{ID: "park-" + strconv.FormatInt(st.since, 36), Direction: "recipient", State: "confirmed"}
		if st.parked.URI != "" {
			d.Remote = &xmlIdentity{Display: st.parked.Display, URI: st.parked.URI}
		}
		doc.Dialogs = []xmlDialog{d}
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		// Only strings and ints: cannot happen.
		panic("sip: dialog-info: " + err.Error())
	}
	return append([]byte(xml.Header), append(out, '\n')...)
}

// shutdown refuses new subscriptions and ends every one with a terminated
// NOTIFY (reason deactivated: the phone subscribes again, to this node
// once it is back or to another).
func (b *lamps) shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, sub := range b.byID {
		b.endLocked(sub, endDeactivated)
	}
}

// wait halts the table, after Shutdown's last NOTIFY was given its chance:
// nothing starts any more, and it waits for the senders and timers.
func (b *lamps) wait(ctx context.Context) error {
	b.mu.Lock()
	b.halted = true
	for _, sub := range b.byID {
		b.disarmLocked(sub)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
