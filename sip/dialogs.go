package sip

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// dialogKey finds a leg from a request arriving on it: the Call-ID and the
// tag the switch chose for that dialog.
type dialogKey struct {
	callID string
	tag    string
}

// dialogStore indexes every live leg of every call.
type dialogStore struct {
	mu   sync.RWMutex
	legs map[dialogKey]*leg
}

func (d *dialogStore) init() { d.legs = make(map[dialogKey]*leg) }

func (d *dialogStore) add(l *leg) {
	d.mu.Lock()
	d.legs[l.key()] = l
	d.mu.Unlock()
}

func (d *dialogStore) remove(l *leg) {
	d.mu.Lock()
	if d.legs[l.key()] == l {
		delete(d.legs, l.key())
	}
	d.mu.Unlock()
}

func (d *dialogStore) len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.legs)
}

// forRequest finds the leg an in-dialog request belongs to: our tag is in
// To, the peer's in From (RFC 3261 §12.2.2).
func (d *dialogStore) forRequest(req *sip.Request) *leg {
	to, from, cid := req.To(), req.From(), req.CallID()
	if to == nil || from == nil || cid == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	if tag == "" {
		return nil
	}
	d.mu.RLock()
	l := d.legs[dialogKey{callID: cid.Value(), tag: tag}]
	d.mu.RUnlock()
	if l == nil {
		return nil
	}
	ftag, _ := from.Params.Get("tag")
	l.mu.Lock()
	rt := l.remoteTag
	l.mu.Unlock()
	if rt != "" && ftag != rt {
		return nil
	}
	return l
}

// forResponse finds the leg a response to one of our requests belongs to:
// our tag is in From.
func (d *dialogStore) forResponse(res *sip.Response) *leg {
	from, cid := res.From(), res.CallID()
	if from == nil || cid == nil {
		return nil
	}
	tag, _ := from.Params.Get("tag")
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.legs[dialogKey{callID: cid.Value(), tag: tag}]
}
