package sip

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/store"
)

// This file keeps the dialog of every answered leg in the state store
// (SPEC §10), written behind so that no call waits for it: after a crash
// this node, or another one, re-INVITEs a parked leg onto its music and
// sends a BYE to each leg of a call that was bridged.

// snapshot is the leg's dialog as the store keeps it. Keys are never
// stored: a restored SRTP leg is offered new ones.
func (l *leg) snapshot(parked bool) store.Dialog {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := store.Dialog{
		CallID: l.callID, LocalTag: l.localTag, RemoteTag: l.remoteTag,
		LocalURI: l.local.String(), LocalName: l.localName,
		RemoteURI: l.remote.String(), RemoteName: l.remoteName,
		LocalCSeq: l.localCSeq, RemoteCSeq: l.remoteCSeq,
		RemoteTarget: l.remoteTarget.String(), Dest: l.dest, Transport: l.transport,
		LocalSDP: string(l.lastSDP), Role: string(l.role), Call: l.c.id, Parked: parked,
		Owner: l.s.opts.Store.NodeID(),
	}
	for _, r := range l.routeSet {
		d.RouteSet = append(d.RouteSet, r.String())
	}
	if l.ep != nil {
		d.RelayPort = int(l.ep.Addr().Port())
	}
	if a := l.desc.Addr; a.IsValid() {
		// What the phone's SDP said, in a form media.Parse reads back.
		d.RemoteSDP = string(media.NewSDPWriter(a.Addr()).Offer(int(a.Port()), l.desc.Formats, l.desc.Direction))
	}
	return d
}

func dialogKeyOf(callID, tag string) string { return "dialog/" + callID + "/" + tag }

// saveDialog writes l's dialog behind. Whether the leg is parked is read
// when the write runs, so that a save queued late (an answer's, after a
// quick park) cannot mark a parked leg bridged.
func (s *Switch) saveDialog(l *leg) {
	l.mu.Lock()
	l.stored = true
	l.mu.Unlock()
	key := dialogKeyOf(l.callID, l.localTag)
	s.writes.Queue(key, func(ctx context.Context) error {
		l.mu.Lock()
		gone := l.ended
		l.mu.Unlock()
		if gone {
			return store.IgnoreNotFound(s.opts.Store.DeleteDialog(ctx, l.callID, l.localTag))
		}
		_, err := s.opts.Store.PutDialog(ctx, l.snapshot(l.callOf().parkedLeg() == l))
		return err
	})
}

// BridgedSaveDelay is how long an answered call lasts before its two
// dialogs are stored, so that after a crash its phones get a BYE. Calls
// that end sooner (most of those that end at once, a wrong number or a
// machine) cost the store nothing; a crash in their first second leaves
// their phones to notice the silence.
const BridgedSaveDelay = time.Second

// saveDialogsLater stores the legs of answered call c once it has lasted
// BridgedSaveDelay; teardown stops the timer. A leg that moved to another
// call meanwhile (a transfer) has been saved there and is saved again.
func (s *Switch) saveDialogsLater(c *call, legs ...*leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	// On the park clock, which tests may drive, like every other timer of a call's state.
	c.saveLater = s.opts.ParkClock.AfterFunc(BridgedSaveDelay, func() {
		select {
		case <-c.done:
			return
		default:
		}
		for _, l := range legs {
			s.saveDialog(l)
		}
	})
}

// dropDialog removes l's dialog from the store, behind, if it was saved.
func (s *Switch) dropDialog(l *leg) {
	l.mu.Lock()
	stored := l.stored
	l.stored = false
	l.mu.Unlock()
	if !stored {
		return
	}
	callID, tag := l.callID, l.localTag
	s.writes.Queue(dialogKeyOf(callID, tag), func(ctx context.Context) error {
		return store.IgnoreNotFound(s.opts.Store.DeleteDialog(ctx, callID, tag))
	})
}

// legFromSnapshot rebuilds a leg of call c from its stored dialog, anchored
// on ep. It reports false for a snapshot whose URIs do not parse.
func (s *Switch) legFromSnapshot(c *call, d store.Dialog, ep *media.Endpoint) (*leg, bool) {
	var local, remote, target sip.Uri
	if sip.ParseUri(d.LocalURI, &local) != nil || sip.ParseUri(d.RemoteURI, &remote) != nil || sip.ParseUri(d.RemoteTarget, &target) != nil {
		return nil, false
	}
	l := &leg{
		s: s, c: c, role: legRole(d.Role),
		callID: d.CallID, localTag: d.LocalTag, remoteTag: d.RemoteTag,
		local: local, localName: d.LocalName, remote: remote, remoteName: d.RemoteName,
		remoteTarget: target, localCSeq: d.LocalCSeq, remoteCSeq: d.RemoteCSeq,
		transport: strings.ToUpper(d.Transport), dest: d.Dest,
		sips:     strings.EqualFold(target.Scheme, "sips"),
		sdes:     mayUseSDES(d.Transport),
		answered: true, confirmed: true,
		ep:    ep,
		sdp:   media.ResumeSDPWriter(s.opts.AdvertiseIP, []byte(d.LocalSDP)),
		acked: make(chan struct{}),
		gone:  make(chan struct{}),
	}
	close(l.acked)
	l.srtpKey = s.newKey(l.sdes)
	if l.role != roleCaller && l.role != roleCallee {
		l.role = roleCaller
	}
	for _, r := range d.RouteSet {
		var u sip.Uri
		if sip.ParseUri(r, &u) == nil {
			l.routeSet = append(l.routeSet, u)
		}
	}
	if u, ok := s.dir.Load().UserByName(remote.User); ok && strings.EqualFold(remote.Host, s.opts.Domain) {
		l.user = u
	}
	if d.RemoteSDP != "" {
		if desc, err := media.Parse([]byte(d.RemoteSDP), false); err == nil {
			l.desc = desc
			if ep != nil {
				ep.SetRemote(desc.Addr, desc.RTCPMux)
			}
		}
	}
	return l, true
}

// leave lets a parked call go from this process without ending it, on a
// shutdown with a durable store: music stops and the ports close, but no
// BYE goes to the parked phone and the orbit and its dialog stay in the
// store, for this node's next start or another node to take up. It
// reports false, doing nothing, for a call that is not parked.
func (c *call) leave() bool {
	p := c.parkedLeg()
	if p == nil {
		return false
	}
	left := false
	c.endOnce.Do(func() {
		left = true
		c.teardown(nil, p)
		c.log.Info().Msg("parked call left in the state store")
	})
	return left
}
