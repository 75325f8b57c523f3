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

// dialogStore indexes every live leg of every call, and the legs where
// the switch is the UAS by the caller's tag as well, to know a late copy
// of the INVITE that made one.
type dialogStore struct {
	mu      sync.RWMutex
	legs    map[dialogKey]*leg
	callers map[dialogKey]*leg // tag: the caller's From tag
}

func (d *dialogStore) init() {
	d.legs = make(map[dialogKey]*leg)
	d.callers = make(map[dialogKey]*leg)
}

func (d *dialogStore) add(l *leg) {
	d.mu.Lock()
	d.legs[l.key()] = l
	if k, ok := l.callerKey(); ok {
		d.callers[k] = l
	}
	d.mu.Unlock()
}

func (d *dialogStore) remove(l *leg) {
	d.mu.Lock()
	if d.legs[l.key()] == l {
		delete(d.legs, l.key())
	}
	if k, ok := l.callerKey(); ok && d.callers[k] == l {
		delete(d.callers, k)
	}
	d.mu.Unlock()
}

// callerKey is the leg's key by the caller's tag, when the switch is its
// UAS. That tag is set when the leg is made and never again, so it is read
// without the leg's lock, which may be held by callers of add and remove.
func (l *leg) callerKey() (dialogKey, bool) {
	if l.role != roleCaller {
		return dialogKey{}, false
	}
	return dialogKey{callID: l.callID, tag: l.remoteTag}, l.remoteTag != ""
}

// retransmitted reports whether req, an INVITE outside any dialog, is a
// copy of one that made a leg still live: same Call-ID and From tag, and a
// CSeq no higher than the leg has seen. Its server transaction absorbs
// copies for completedWait after the answer (timers.go); one later would
// otherwise be taken for a new call.
func (d *dialogStore) retransmitted(req *sip.Request) bool {
	from, cid, cseq := req.From(), req.CallID(), req.CSeq()
	if from == nil || cid == nil || cseq == nil {
		return false
	}
	tag, _ := from.Params.Get("tag")
	d.mu.RLock()
	l := d.callers[dialogKey{callID: cid.Value(), tag: tag}]
	d.mu.RUnlock()
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return cseq.SeqNo <= l.remoteCSeq
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
