package sip

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestRetransmitted: a late copy of the INVITE that made a live caller leg
// is known by Call-ID, From tag and a CSeq the leg has seen; anything else
// is a new request.
func TestRetransmitted(t *testing.T) {
	var d dialogStore
	d.init()
	caller := &leg{role: roleCaller, callID: "c1@127.0.0.1", localTag: "ours", remoteTag: "theirs", remoteCSeq: 5}
	callee := &leg{role: roleCallee, callID: "c2@127.0.0.1", localTag: "ours2", remoteTag: "far", remoteCSeq: 1}
	d.add(caller)
	d.add(callee)
	invite := func(callID, fromTag string, cseq uint32) *sip.Request {
		req := sip.NewRequest(sip.INVITE, sip.Uri{User: "1002", Host: "127.0.0.1"})
		from := &sip.FromHeader{Address: sip.Uri{User: "1001", Host: "127.0.0.1"}, Params: sip.NewParams()}
		if fromTag != "" {
			from.Params.Add("tag", fromTag)
		}
		req.AppendHeader(from)
		cid := sip.CallIDHeader(callID)
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.INVITE})
		return req
	}
	for _, tc := range []struct {
		name string
		req  *sip.Request
		want bool
	}{
		{"the same INVITE", invite("c1@127.0.0.1", "theirs", 5), true},
		{"an older CSeq", invite("c1@127.0.0.1", "theirs", 4), true},
		{"a higher CSeq", invite("c1@127.0.0.1", "theirs", 6), false},
		{"another From tag", invite("c1@127.0.0.1", "other", 5), false},
		{"no From tag", invite("c1@127.0.0.1", "", 5), false},
		{"another Call-ID", invite("c3@127.0.0.1", "theirs", 5), false},
		{"a leg where the switch is the UAC", invite("c2@127.0.0.1", "far", 1), false},
	} {
		if got := d.retransmitted(tc.req); got != tc.want {
			t.Errorf("%s: retransmitted %v, want %v", tc.name, got, tc.want)
		}
	}
	d.remove(caller)
	if d.retransmitted(invite("c1@127.0.0.1", "theirs", 5)) {
		t.Error("a copy is known after its leg is gone")
	}
	if len(d.callers) != 0 {
		t.Errorf("%d caller keys left", len(d.callers))
	}
}
