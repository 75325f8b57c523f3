package siptest

import (
	"context"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// Subscription is a SUBSCRIBE dialog the phone started (RFC 6665), as a
// desk phone's BLF key does. The NOTIFYs it receives are answered 200 and
// published on Notifies.
type Subscription struct {
	p        *Phone
	key      dialogKey
	uri      sip.Uri
	event    string
	notifies chan *sip.Request

	mu        sync.Mutex
	remoteTag string
	cseq      uint32
	res       *sip.Response
}

// Subscribe sends SUBSCRIBE for event (e.g. "dialog", with Accept
// application/dialog-info+xml) to target, a user part or a sip: URI,
// answering a digest challenge. A final non-2xx is returned as
// *StatusError; NOTIFYs may arrive before the 200, as RFC 6665 allows.
func (p *Phone) Subscribe(ctx context.Context, target, event string, expires int) (*Subscription, error) {
	uri, dest, err := p.resolve(target)
	if err != nil {
		return nil, err
	}
	sub := &Subscription{
		p: p, key: dialogKey{callID: newID(12) + "@127.0.0.1", localTag: newID(8)},
		uri: uri, event: event, cseq: 1, notifies: make(chan *sip.Request, queueSize),
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if p.subs == nil {
		p.subs = make(map[dialogKey]*Subscription)
	}
	p.subs[sub.key] = sub
	p.mu.Unlock()
	res, err := sub.send(ctx, dest, expires)
	if err == nil && !res.IsSuccess() {
		err = newStatusError(res)
	}
	if err != nil {
		p.mu.Lock()
		delete(p.subs, sub.key)
		p.mu.Unlock()
		return nil, err
	}
	return sub, nil
}

// Notifies delivers the NOTIFYs of the subscription.
func (s *Subscription) Notifies() <-chan *sip.Request { return s.notifies }

// Response is the final response to the latest SUBSCRIBE.
func (s *Subscription) Response() *sip.Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res
}

// Refresh sends an in-dialog SUBSCRIBE for expires seconds and returns its
// final status; Expires 0 un-subscribes.
func (s *Subscription) Refresh(ctx context.Context, expires int) (int, error) {
	res, err := s.send(ctx, s.p.cfg.Server, expires)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// Unsubscribe is Refresh with Expires: 0.
func (s *Subscription) Unsubscribe(ctx context.Context) (int, error) { return s.Refresh(ctx, 0) }

func (s *Subscription) send(ctx context.Context, dest string, expires int) (*sip.Response, error) {
	p := s.p
	s.mu.Lock()
	seq, remoteTag := s.cseq, s.remoteTag
	s.cseq++
	s.mu.Unlock()
	req := sip.NewRequest(sip.SUBSCRIBE, s.uri)
	from := &sip.FromHeader{DisplayName: p.cfg.DisplayName, Address: p.aor()}
	from.Params.Add("tag", s.key.localTag)
	to := &sip.ToHeader{Address: uriWithoutParams(s.uri)}
	if remoteTag != "" {
		to.Params.Add("tag", remoteTag)
	}
	callID := sip.CallIDHeader(s.key.callID)
	exp := sip.ExpiresHeader(expires)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(p.contact.Clone())
	req.AppendHeader(sip.NewHeader("Event", s.event))
	req.AppendHeader(sip.NewHeader("Accept", "application/dialog-info+xml"))
	req.AppendHeader(&exp)
	req.AppendHeader(sip.NewHeader("User-Agent", userAgentName))
	req.SetTransport(p.transport)
	if dest != "" {
		req.SetDestination(dest)
	}
	res, err := p.doAuth(ctx, req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res = res
	if cs := req.CSeq(); cs != nil && cs.SeqNo >= s.cseq {
		s.cseq = cs.SeqNo + 1 // the authenticated retry took the next one
	}
	if tag, _ := res.To().Params.Get("tag"); res.IsSuccess() && s.remoteTag == "" {
		s.remoteTag = tag
	}
	return res, nil
}

// subscriptionFor finds the subscription a NOTIFY belongs to.
func (p *Phone) subscriptionFor(req *sip.Request) *Subscription {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.subs[dialogKey{cid.Value(), tag}]
}
