package siptest

import (
	"context"
	"net/url"

	"github.com/emiago/sipgo/sip"
)

// ReplacesID names the call's dialog the way RFC 3891 §3 has a Replaces
// header name it to the far end, the UA holding the other side of it:
// the Call-ID, to-tag the far end's tag, from-tag the phone's own.
func (c *Call) ReplacesID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.callID + ";to-tag=" + c.remoteTag + ";from-tag=" + c.localTag
}

// ReferReplaces sends an in-dialog REFER for an attended transfer, as a
// desk phone completes one: Refer-To is target (a sip: URI) with the
// escaped header Replaces=<replaces>, e.g. other.ReplacesID(). It returns
// the final status code; a non-2xx status is not an error.
func (c *Call) ReferReplaces(ctx context.Context, target, replaces string) (int, error) {
	return c.Refer(ctx, target+"?Replaces="+url.QueryEscape(replaces))
}

// DialReplaces places a call like Dial whose INVITE carries a Replaces
// header with value replaces (RFC 3891), e.g. another phone's
// Call.ReplacesID(): the call takes that dialog's place at the far end.
// More values make more Replaces headers, which a UAS refuses.
func (p *Phone) DialReplaces(ctx context.Context, target string, replaces ...string) (*Call, error) {
	uri, dest, err := p.resolve(target)
	if err != nil {
		return nil, err
	}
	hdrs := make([]sip.Header, 0, len(replaces))
	for _, r := range replaces {
		hdrs = append(hdrs, sip.NewHeader("Replaces", r))
	}
	c, err := p.dial(ctx, uri, dest, hdrs...)
	if err != nil {
		return nil, err
	}
	return waitSetup(ctx, c)
}

// ReplacesID names the early dialog of an INVITE still ringing at the
// phone, as Call.ReplacesID names an established one: the caller's tag
// as to-tag, the tag the phone's provisional responses carry as from-tag.
func (in *Incoming) ReplacesID() string {
	tag, _ := in.Req.From().Params.Get("tag")
	return in.CallID + ";to-tag=" + tag + ";from-tag=" + in.toTag
}

// EarlyReplacesID names the early dialog of a call the phone placed that
// still rings, as Call.ReplacesID names an established one: the tag of
// the first provisional response that carried one as to-tag, the phone's
// own as from-tag ("" before any such response).
func (c *Call) EarlyReplacesID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.earlyTag == "" {
		return ""
	}
	return c.callID + ";to-tag=" + c.earlyTag + ";from-tag=" + c.localTag
}
