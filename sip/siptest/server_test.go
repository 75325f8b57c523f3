package siptest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// stubSwitch is the smallest registrar/UAS that exercises the phone the way
// the switch does: digest challenges, a 200 OK, then in-dialog requests of
// its own on the phone's UAC leg.
type stubSwitch struct {
	t     *testing.T
	ua    *sipgo.UserAgent
	cli   *sipgo.Client
	conn  net.PacketConn
	tcp   net.Listener
	addr  string // UDP host:port
	tcpAd string // TCP host:port
	media *net.UDPConn
	moh   *net.UDPConn
	done  chan struct{}

	users map[string]string
	realm string
	nonce string

	acks chan *sip.Request
	byes chan *sip.Request

	closing atomic.Bool

	mu       sync.Mutex
	expires  []string
	invite   *sip.Request
	ok       *sip.Response
	localSeq uint32
}

func newStubSwitch(t *testing.T) *stubSwitch {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
	)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stubSwitch{
		t: t, ua: ua, conn: conn, addr: conn.LocalAddr().String(),
		tcp: tcp, tcpAd: tcp.Addr().String(),
		done:  make(chan struct{}),
		users: map[string]string{"1001": "demo1001"},
		realm: "contoso.com", nonce: newID(8), localSeq: 100,
		acks: make(chan *sip.Request, 16), byes: make(chan *sip.Request, 4),
	}
	s.media = listenUDP(t)
	s.moh = listenUDP(t)
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	s.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(quiet), sipgo.WithClientConnectionAddr(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(s.handle(s.onRegister))
	srv.OnInvite(s.handle(s.onInvite))
	srv.OnAck(s.handle(func(req *sip.Request, _ sip.ServerTransaction) { s.acks <- req }))
	srv.OnBye(s.handle(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		s.byes <- req
	}))
	tcpDone := make(chan struct{})
	go func() {
		defer close(s.done)
		_ = srv.ServeUDP(conn)
	}()
	go func() {
		defer close(tcpDone)
		_ = srv.ServeTCP(tcp)
	}()
	pool := ua.TransportLayer().Pool("udp")
	for pool.Size() == 0 {
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() {
		s.closing.Store(true)
		conn.Close()
		tcp.Close()
		<-s.done
		<-tcpDone
		ua.Close()
		s.media.Close()
		s.moh.Close()
	})
	return s
}

// handle drops requests that race the stub's shutdown, like Phone does.
func (s *stubSwitch) handle(fn sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if s.closing.Load() {
			dropLateConnection(tx)
			return
		}
		fn(req, tx)
	}
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// authorized checks digest credentials in hdr, challenging with chalHdr and
// code when they are absent.
func (s *stubSwitch) authorized(req *sip.Request, tx sip.ServerTransaction, hdr, chalHdr string, code int) bool {
	chal := &digest.Challenge{Realm: s.realm, Nonce: s.nonce, Algorithm: "MD5", QOP: []string{"auth"}}
	h := req.GetHeader(hdr)
	if h == nil {
		res := sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil)
		res.AppendHeader(sip.NewHeader(chalHdr, chal.String()))
		_ = tx.Respond(res)
		return false
	}
	cred, err := digest.ParseCredentials(h.Value())
	ok := err == nil
	if ok {
		pw, known := s.users[cred.Username]
		want, err := digest.Digest(chal, digest.Options{
			Method: req.Method.String(), URI: cred.URI, Username: cred.Username,
			Password: pw, Cnonce: cred.Cnonce, Count: cred.Nc,
		})
		ok = known && err == nil && want.Response == cred.Response
	}
	if !ok {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
	}
	return ok
}

func (s *stubSwitch) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	if !s.authorized(req, tx, "Authorization", "WWW-Authenticate", 401) {
		return
	}
	s.mu.Lock()
	if e := req.GetHeader("Expires"); e != nil {
		s.expires = append(s.expires, e.Value())
	}
	s.mu.Unlock()
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

func (s *stubSwitch) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if !s.authorized(req, tx, "Proxy-Authorization", "Proxy-Authenticate", 407) {
		return
	}
	dir := "sendrecv"
	if SDPDirection(req.Body()) == "sendonly" {
		dir = "recvonly"
	}
	answer := buildSDP(7, 1, netip.MustParseAddrPort(t2ap(s.media)), []uint8{ptPCMU}, ptEvent, dir)
	res := sip.NewResponseFromRequest(req, 200, "OK", answer)
	res.AppendHeader(s.contact(req.Transport()))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	if tag, _ := req.To().Params.Get("tag"); tag == "" {
		s.mu.Lock()
		s.invite, s.ok = req, res
		s.mu.Unlock()
	}
	_ = tx.Respond(res)
}

// request builds an in-dialog request from the stub's (UAS) side.
func (s *stubSwitch) request(method sip.RequestMethod) *sip.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != sip.ACK {
		s.localSeq++
	}
	req := sip.NewRequest(method, *s.invite.Contact().Address.Clone())
	from := s.ok.To().AsFrom()
	to := s.invite.From().AsTo()
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	req.AppendHeader(sip.HeaderClone(s.invite.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.localSeq, MethodName: method})
	req.AppendHeader(s.contact(s.invite.Transport()))
	req.SetTransport(s.invite.Transport())
	return req
}

func (s *stubSwitch) do(ctx context.Context, req *sip.Request) *sip.Response {
	s.t.Helper()
	res, err := s.cli.Do(ctx, req, prebuilt)
	if err != nil {
		s.t.Fatalf("stub %s: %v", req.Method, err)
	}
	return res
}

// waitAck returns the next ACK with CSeq seq; over TCP the ACK for a
// challenge can also arrive here once the stub's transaction is gone.
func (s *stubSwitch) waitAck(t *testing.T, seq uint32) *sip.Request {
	t.Helper()
	for {
		if ack := recv(t, fmt.Sprintf("ACK with CSeq %d", seq), s.acks); ack.CSeq().SeqNo == seq {
			return ack
		}
	}
}

func (s *stubSwitch) contact(transport string) *sip.ContactHeader {
	h := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "switch", Host: "127.0.0.1", Port: portOf(s.addr)}}
	if transport == "TCP" {
		h.Address.Port = portOf(s.tcpAd)
		h.Address.UriParams = sip.NewParams()
		h.Address.UriParams.Add("transport", "tcp")
	}
	return h
}

// server is the address a phone on transport should use.
func (s *stubSwitch) server(transport string) string {
	if transport == "tcp" {
		return s.tcpAd
	}
	return s.addr
}

func portOf(addr string) int {
	_, p, _ := sip.ParseAddr(addr)
	return p
}

func TestRegisterWithDigest(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) { testRegisterWithDigest(t, tp) })
	}
}

func testRegisterWithDigest(t *testing.T, tp string) {
	noLeaks(t)
	ctx := testCtx(t)
	sw := newStubSwitch(t)
	p := newTestPhone(t, "1001", tp, func(c *Config) { c.Server = sw.server(tp) })
	if err := p.Register(ctx, 300); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if res := p.LastRegisterResponse(); res == nil || res.StatusCode != 200 {
		t.Fatalf("LastRegisterResponse = %v", res)
	}
	if err := p.Unregister(ctx); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	sw.mu.Lock()
	got := strings.Join(sw.expires, ",")
	sw.mu.Unlock()
	if got != "300,0" {
		t.Errorf("Expires seen by registrar = %q", got)
	}

	bad := newTestPhone(t, "1001", tp, func(c *Config) { c.Server = sw.server(tp); c.Password = "wrong" })
	err := bad.Register(ctx, 300)
	if StatusCode(err) != 403 {
		t.Fatalf("Register with a wrong password = %v, want 403", err)
	}
}

func TestDialThroughServer(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) { testDialThroughServer(t, tp) })
	}
}

func testDialThroughServer(t *testing.T, tp string) {
	noLeaks(t)
	ctx := testCtx(t)
	sw := newStubSwitch(t)
	p := newTestPhone(t, "1001", tp, func(c *Config) { c.Server = sw.server(tp) })

	c, err := p.Dial(ctx, "1002")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	sw.mu.Lock()
	inv, ok := sw.invite, sw.ok
	sw.mu.Unlock()
	if inv.Recipient.String() != "sip:1002@contoso.com" || inv.GetHeader("Proxy-Authorization") == nil {
		t.Fatalf("INVITE %s without credentials", inv.Recipient.String())
	}
	okSeq := ok.CSeq().SeqNo
	sw.waitAck(t, okSeq)
	if want := t2ap(sw.media); c.RemoteMedia().String() != want {
		t.Errorf("RemoteMedia %v, want %v", c.RemoteMedia(), want)
	}

	// A retransmitted 2xx is ACKed again even though the INVITE
	// transaction is gone.
	if err := sw.ua.TransportLayer().WriteMsg(ok); err != nil {
		t.Fatal(err)
	}
	sw.waitAck(t, okSeq)

	// The switch moves the phone to music on hold: sendonly offer from
	// another address. The phone answers recvonly and follows it.
	reinv := sw.request(sip.INVITE)
	reinv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	reinv.SetBody(buildSDP(7, 2, netip.MustParseAddrPort(t2ap(sw.moh)), []uint8{ptPCMU}, ptEvent, "sendonly"))
	res := sw.do(ctx, reinv)
	if res.StatusCode != 200 || SDPDirection(res.Body()) != "recvonly" {
		t.Fatalf("re-INVITE answered %d %q", res.StatusCode, SDPDirection(res.Body()))
	}
	ack := sw.request(sip.ACK)
	ack.CSeq().SeqNo = reinv.CSeq().SeqNo
	if err := sw.cli.WriteRequest(ack, prebuilt); err != nil {
		t.Fatal(err)
	}
	got := recv(t, "re-INVITE at the phone", c.ReInvites())
	if SDPDirection(got.Body()) != "sendonly" || c.LocalDirection() != "recvonly" {
		t.Errorf("phone saw %q and answered %q", SDPDirection(got.Body()), c.LocalDirection())
	}
	if c.RemoteMedia().String() != t2ap(sw.moh) {
		t.Errorf("RemoteMedia %v after re-INVITE, want %v", c.RemoteMedia(), t2ap(sw.moh))
	}
	if err := c.SendRTP(ctx, 3, 0); err != nil {
		t.Fatal(err)
	}
	_ = sw.moh.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	if n, _, err := sw.moh.ReadFrom(buf); err != nil || n != 12+160 {
		t.Fatalf("RTP at the new address: %d bytes, %v", n, err)
	}

	// The switch's own requests on the phone's UAC leg use the switch's
	// CSeq space, unrelated to the phone's.
	notify := sw.request(sip.NOTIFY)
	notify.AppendHeader(sip.NewHeader("Event", "refer"))
	notify.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	notify.SetBody([]byte("SIP/2.0 200 OK\r\n"))
	if res := sw.do(ctx, notify); res.StatusCode != 200 {
		t.Fatalf("NOTIFY answered %d", res.StatusCode)
	}
	recv(t, "NOTIFY at the phone", c.Notifies())

	// The phone's own re-INVITE is challenged in-dialog, like its INVITE.
	if err := c.Hold(ctx); err != nil {
		t.Fatalf("Hold through the switch: %v", err)
	}
	// One CSeq for the challenged re-INVITE, the next for its retry.
	sw.waitAck(t, okSeq+2)
	if c.LocalDirection() != "sendonly" || c.RemoteDirection() != "recvonly" {
		t.Errorf("after hold: local %s remote %s", c.LocalDirection(), c.RemoteDirection())
	}

	if res := sw.do(ctx, sw.request(sip.BYE)); res.StatusCode != 200 {
		t.Fatalf("BYE answered %d", res.StatusCode)
	}
	waitClosed(t, "call end", c.Done())
	if c.EndReason() != EndRemoteHangup {
		t.Errorf("end reason %q", c.EndReason())
	}
}

func TestDialWrongPassword(t *testing.T) {
	noLeaks(t)
	ctx := testCtx(t)
	sw := newStubSwitch(t)
	p := newTestPhone(t, "1001", "udp", func(c *Config) { c.Server = sw.addr; c.Password = "nope" })
	if _, err := p.Dial(ctx, "1002"); StatusCode(err) != 403 {
		t.Fatalf("Dial = %v, want 403", err)
	}
	if len(p.Calls()) != 0 {
		t.Errorf("failed call left in the phone")
	}
}

func t2ap(c *net.UDPConn) string {
	a := c.LocalAddr().(*net.UDPAddr)
	return fmt.Sprintf("127.0.0.1:%d", a.Port)
}
