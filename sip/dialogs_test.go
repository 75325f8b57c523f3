package sip

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

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

// TestLateInviteCopy sends, from another socket, a copy of an answered
// INVITE as it would arrive after its transaction is gone (a new branch):
// the switch answers nothing and places no second call.
func TestLateInviteCopy(t *testing.T) {
	s := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob := s.phone(t, ctx, "1001"), s.phone(t, ctx, "1002")
	a, b := liveCall(t, ctx, alice, bob, "1002")
	ok := a.FinalResponse()
	ftag, _ := ok.From().Params.Get("tag")
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	here := conn.LocalAddr().String()
	copyOf := func(cseq uint32) string {
		return fmt.Sprintf("INVITE sip:1002@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-late-%d\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:1001@%s>;tag=%s\r\nTo: <sip:1002@%s>\r\nCall-ID: %s\r\n"+
			"CSeq: %d INVITE\r\nContact: <sip:1001@%s>\r\nContent-Length: 0\r\n\r\n",
			liveDomain, here, cseq, liveDomain, ftag, liveDomain, a.CallID(), cseq, here)
	}
	send := func(msg string) string {
		if _, err := conn.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(s.Addr("udp"))); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		return line
	}
	if got := send(copyOf(ok.CSeq().SeqNo)); got != "" {
		t.Fatalf("a late copy of the answered INVITE was answered: %q", got)
	}
	select {
	case in := <-bob.Incoming():
		t.Fatalf("the copy rang the callee again: %s", in.Req.CallID().Value())
	default:
	}
	// A new request in that Call-ID (a higher CSeq) is still one: it is
	// answered (challenged, here).
	if got := send(copyOf(ok.CSeq().SeqNo + 1)); got == "" {
		t.Fatal("a new INVITE with the same Call-ID and From tag got no answer")
	}
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	liveEnded(t, b, "callee")
}
