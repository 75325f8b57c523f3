package sip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"

	"github.com/parkswitch/parkswitch/sip/internal/testclock"
)

// newTestSwitch builds a switch that is never started: enough for the
// bookkeeping behind bans and throttles, on clk.
func newTestSwitch(t *testing.T, clk *testclock.Clock, trunks []Trunk) *Switch {
	t.Helper()
	ports, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), 40000, 40010)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Domain: "contoso.com", Listen: []Listen{{"udp", "127.0.0.1:0"}}, Ports: ports, Now: clk.Now,
		Directory: NewDirectory([]User{{ID: "1001@contoso.com", Password: "x"}}, trunks),
		BanAfter:  3, BanWindow: time.Minute, BanTime: 10 * time.Minute, RetrieveMisses: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func requestFrom(src string) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "contoso.com"})
	req.SetSource(src)
	return req
}

func TestRetrieveMissThrottle(t *testing.T) {
	clk := testclock.New(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
	s := newTestSwitch(t, clk, nil)
	for i := range 10 {
		if s.retrieveThrottled("1001") {
			t.Fatalf("throttled after %d misses", i)
		}
		s.retrieveMissed("1001")
		clk.Advance(5 * time.Second)
	}
	// Ten misses within 60 s: the next retrieves are refused for 60 s.
	for i := 0; i < 2; i++ {
		if !s.retrieveThrottled("1001") {
			t.Fatalf("retrieve %d not throttled after ten misses in a minute", i+1)
		}
	}
	if s.retrieveThrottled("1002") {
		t.Error("another user throttled")
	}
	clk.Advance(54 * time.Second) // 59 s after the tenth miss
	if !s.retrieveThrottled("1001") {
		t.Error("throttle ended early")
	}
	clk.Advance(time.Second)
	if s.retrieveThrottled("1001") {
		t.Error("throttle outlived its minute")
	}
	// Misses spread wider than the window never throttle.
	for range 30 {
		s.retrieveMissed("1002")
		clk.Advance(7 * time.Second)
	}
	if s.retrieveThrottled("1002") {
		t.Error("one miss every 7 s throttled")
	}
}

func TestBanOfFailingSource(t *testing.T) {
	clk := testclock.New(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
	trunk := Trunk{Name: "carrier", Address: netip.MustParseAddrPort("192.0.2.10:5060"), Transport: "udp"}
	s := newTestSwitch(t, clk, []Trunk{trunk})
	bad := requestFrom("198.51.100.4:5060")
	for range 2 {
		s.authFailed(bad)
	}
	if s.ignored(bad) || len(s.Bans()) != 0 {
		t.Fatal("banned before ban_after failures")
	}
	s.authFailed(requestFrom("198.51.100.4:6000")) // same IP, other port
	if !s.ignored(bad) {
		t.Fatal("not banned after ban_after failures from one IP")
	}
	if s.ignored(requestFrom("198.51.100.5:5060")) {
		t.Error("a neighbour was banned")
	}
	bs := s.Bans()
	if len(bs) != 1 || bs[0].IP != netip.MustParseAddr("198.51.100.4") || bs[0].Failures != 3 ||
		!bs[0].Until.Equal(clk.Now().Add(10*time.Minute)) {
		t.Fatalf("Bans = %+v", bs)
	}
	clk.Advance(10 * time.Minute)
	if s.ignored(bad) {
		t.Error("ban outlived ban_seconds")
	}

	for range 3 {
		s.authFailed(bad)
	}
	if !s.Unban(netip.MustParseAddr("::ffff:198.51.100.4")) || s.ignored(bad) {
		t.Error("Unban (IPv4-mapped form) did not lift the ban")
	}
	if s.Unban(netip.MustParseAddr("198.51.100.4")) {
		t.Error("Unban of an address not banned reported true")
	}

	// Trunks are never banned, however often they fail.
	tr := requestFrom("192.0.2.10:5060")
	for range 10 {
		s.authFailed(tr)
	}
	if s.ignored(tr) || len(s.Bans()) != 0 {
		t.Error("a trunk was banned")
	}
}
