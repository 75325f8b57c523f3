package sip

import (
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkswitch/parkswitch/sip/ban"
)

// Defaults of the brute-force and code-scanning limits (SPEC §13).
const (
	DefaultBanAfter       = 10
	DefaultBanWindow      = 60 * time.Second
	DefaultBanTime        = 600 * time.Second
	DefaultRetrieveMisses = 10
	retrieveMissWindow    = 60 * time.Second
	retrieveBlockTime     = 60 * time.Second
)

// Ban is a source address the switch ignores after failed authentications.
type Ban struct {
	IP       netip.Addr
	Since    time.Time
	Until    time.Time
	Failures int
}

// security holds the per-source bans and the per-user retrieve throttle.
type security struct {
	bans      *ban.Table[netip.Addr]
	misses    *ban.Table[string]
	bansTotal prometheus.Counter
}

func (s *Switch) initSecurity(reg prometheus.Registerer) {
	o := &s.opts
	if o.BanAfter <= 0 {
		o.BanAfter = DefaultBanAfter
	}
	if o.BanWindow <= 0 {
		o.BanWindow = DefaultBanWindow
	}
	if o.BanTime <= 0 {
		o.BanTime = DefaultBanTime
	}
	if o.RetrieveMisses <= 0 {
		o.RetrieveMisses = DefaultRetrieveMisses
	}
	s.sec = security{
		bans:   ban.New[netip.Addr](ban.Limits{After: o.BanAfter, Window: o.BanWindow, For: o.BanTime}, o.Now),
		misses: ban.New[string](ban.Limits{After: o.RetrieveMisses, Window: retrieveMissWindow, For: retrieveBlockTime}, o.Now),
		bansTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parkswitch_bans_total", Help: "Source addresses banned after failed authentications.",
		}),
	}
	if reg != nil {
		reg.MustRegister(s.sec.bansTotal)
	}
}

// sourceIP is the address a request came from (invalid when unknown).
func sourceIP(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// ignored reports whether req comes from a banned source and is to be
// dropped without an answer. Trunks are never banned, and requests within
// a dialog the switch holds still pass: a call that was up before the ban
// can end cleanly.
func (s *Switch) ignored(req *sip.Request) bool {
	ip := sourceIP(req)
	if !ip.IsValid() || !s.sec.bans.Blocked(ip) {
		return false
	}
	if _, trunk := s.dir.Load().TrunkFrom(ip); trunk {
		return false
	}
	return s.dialogs.forRequest(req) == nil
}

// authFailed counts a failed authentication against the request's source
// and bans it when that was one too many.
func (s *Switch) authFailed(req *sip.Request) {
	ip := sourceIP(req)
	if !ip.IsValid() {
		return
	}
	if _, trunk := s.dir.Load().TrunkFrom(ip); trunk {
		return
	}
	if b := s.sec.bans.Strike(ip); b != nil {
		s.sec.bansTotal.Inc()
		s.log.Warn().Str("ip", ip.String()).Int("failures", b.Failures).Time("until", b.Until).
			Msg("source banned after failed authentications: its requests are ignored")
	}
}

// Bans lists the sources banned now.
func (s *Switch) Bans() []Ban {
	bs := s.sec.bans.Blocks()
	out := make([]Ban, len(bs))
	for i, b := range bs {
		out[i] = Ban{IP: b.Key, Since: b.Since, Until: b.Until, Failures: b.Failures}
	}
	return out
}

// Unban lifts the ban on ip and forgets its failures; false when it was
// not banned.
func (s *Switch) Unban(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !s.sec.bans.Lift(ip) {
		return false
	}
	s.log.Warn().Str("ip", ip.String()).Msg("ban lifted")
	return true
}

// retrieveThrottled reports whether user has missed too many codes lately
// (SPEC §13 "Code scanning").
func (s *Switch) retrieveThrottled(user string) bool {
	return s.sec.misses.Blocked(strings.ToLower(user))
}

// retrieveMissed counts a retrieve of an empty code against user.
func (s *Switch) retrieveMissed(user string) {
	if b := s.sec.misses.Strike(strings.ToLower(user)); b != nil {
		s.log.Warn().Str("user", user).Int("misses", b.Failures).Time("until", b.Until).
			Msg("too many retrieves of empty codes: refusing this user's retrieves")
	}
}

// respondOnce sends a response to a request that is not authenticated
// without the server transaction: its final response would be
// retransmitted until an ACK (RFC 3261 Timer G, ten copies over 32 s on
// UDP), which makes the switch a reflector toward a spoofed source. A
// client that misses it retransmits its request and gets a new one.
func (s *Switch) respondOnce(tx sip.ServerTransaction, res *sip.Response) {
	c, ok := tx.(interface{ Connection() sip.Connection })
	if !ok || c.Connection() == nil {
		s.respond(tx, res)
		return
	}
	if err := c.Connection().WriteMsg(res); err != nil {
		s.log.Debug().Err(err).Int("status", res.StatusCode).Msg("respond failed")
	}
	tx.Terminate()
}

// replyOnce is reply through respondOnce.
func (s *Switch) replyOnce(req *sip.Request, tx sip.ServerTransaction, code int, phrase string) {
	s.respondOnce(tx, s.response(req, code, phrase))
}
