package siptest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// Incoming is a new INVITE waiting for Answer or Reject.
type Incoming struct {
	// Req is the INVITE as received.
	Req *sip.Request

	CallID      string
	FromUser    string // user part of From
	FromDisplay string // display name of From
	ToUser      string // user part of To

	p  *Phone
	tx sip.ServerTransaction
	// req is a copy of Req carrying the phone's To tag: every response is
	// built from it so all of them share one tag.
	req      *sip.Request
	toTag    string
	canceled chan struct{}
	finished chan struct{}

	mu          sync.Mutex
	state       int
	wasCanceled bool
}

const (
	inPending = iota
	inAnswering
	inDone
)

func newIncoming(p *Phone, req *sip.Request, tx sip.ServerTransaction) (*Incoming, error) {
	from, to, cid, cseq := req.From(), req.To(), req.CallID(), req.CSeq()
	if from == nil || to == nil || cid == nil || cseq == nil || req.Contact() == nil {
		return nil, errors.New("siptest: INVITE lacks From, To, Call-ID, CSeq or Contact")
	}
	if tag, _ := from.Params.Get("tag"); tag == "" {
		return nil, errors.New("siptest: INVITE From has no tag")
	}
	in := &Incoming{
		Req:         req,
		CallID:      cid.Value(),
		FromUser:    from.Address.User,
		FromDisplay: from.DisplayName,
		ToUser:      to.Address.User,
		p:           p,
		tx:          tx,
		req:         req.Clone(),
		toTag:       newID(8),
		canceled:    make(chan struct{}),
		finished:    make(chan struct{}),
	}
	in.req.To().Params.Add("tag", in.toTag)
	return in, nil
}

// Canceled is closed when the caller CANCELs the INVITE before it is
// answered (sipgo has already replied 200 to the CANCEL and 487 to the
// INVITE).
func (in *Incoming) Canceled() <-chan struct{} { return in.canceled }

// markCanceled runs inside the transaction's state machine: it must not call
// back into the transaction.
func (in *Incoming) markCanceled() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.wasCanceled && in.state != inDone {
		in.wasCanceled = true
		close(in.canceled)
	}
}

func (in *Incoming) isCanceled() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.wasCanceled
}

// Ring sends 180 Ringing.
func (in *Incoming) Ring() error {
	in.mu.Lock()
	pending := in.state == inPending && !in.wasCanceled
	in.mu.Unlock()
	if !pending {
		return errors.New("siptest: INVITE already answered, rejected or cancelled")
	}
	res := sip.NewResponseFromRequest(in.req, sip.StatusRinging, "Ringing", nil)
	res.AppendHeader(in.p.contact.Clone())
	return in.tx.Respond(res)
}

// Reject answers the INVITE with a final status between 300 and 699.
func (in *Incoming) Reject(code int) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("siptest: Reject needs a status 300-699, got %d", code)
	}
	in.mu.Lock()
	if in.state != inPending || in.wasCanceled {
		in.mu.Unlock()
		return errors.New("siptest: INVITE already answered, rejected or cancelled")
	}
	in.state = inDone
	in.mu.Unlock()
	defer close(in.finished)
	res := sip.NewResponseFromRequest(in.req, code, reasonPhrase(code), nil)
	return in.tx.Respond(res)
}

// Answer sends 200 OK with an SDP answer from a fresh RTP socket and returns
// once the caller's ACK arrives (bounded by ctx and the 64*T1 ACK timer).
func (in *Incoming) Answer(ctx context.Context) (*Call, error) {
	in.mu.Lock()
	switch {
	case in.wasCanceled:
		in.mu.Unlock()
		return nil, ErrCanceled
	case in.state != inPending:
		in.mu.Unlock()
		return nil, errors.New("siptest: INVITE already answered or rejected")
	}
	in.state = inAnswering
	in.mu.Unlock()

	c, err := in.p.answer(ctx, in)

	in.mu.Lock()
	in.state = inDone
	in.mu.Unlock()
	close(in.finished)
	return c, err
}
