package sip

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestFramer(t *testing.T) {
	const reg = "REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5000\r\nContent-Length: 0\r\n\r\n"
	const inv = "INVITE sip:1002@contoso.com SIP/2.0\r\nl: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	cases := []struct {
		name   string
		chunks []string
		want   frameState
	}{
		{"nothing yet", nil, frameStart},
		{"keep-alives only", []string{"\r\n\r\n", "\r\n"}, frameStart},
		{"one message", []string{reg}, frameIdle},
		{"then keep-alive", []string{reg, "\r\n\r\n"}, frameIdle},
		{"partial start line", []string{"REGIST"}, frameHeader},
		{"headers without the empty line", []string{reg[:len(reg)-2]}, frameHeader},
		{"body by compact l", []string{inv}, frameIdle},
		{"body short", []string{inv[:len(inv)-2]}, frameBody},
		{"byte by byte", splitEvery(inv+reg, 1), frameIdle},
		{"split at CR LF", []string{reg[:len(reg)-1], reg[len(reg)-1:]}, frameIdle},
		{"two messages and half", []string{reg + inv + reg[:10]}, frameHeader},
		{"bare LF lines", []string{"OPTIONS sip:a SIP/2.0\nContent-Length: 3\n\nabc"}, frameIdle},
		{"long header line", []string{"OPTIONS sip:a SIP/2.0\r\nX-Long: " + string(make([]byte, 300)) + "\r\nContent-Length: 2\r\n\r\nab"}, frameIdle},
		{"content-length spaced", []string{"OPTIONS sip:a SIP/2.0\r\ncontent-LENGTH  :  4 \r\n\r\nab"}, frameBody},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := framer{state: frameStart}
			for _, ch := range c.chunks {
				f.feed([]byte(ch), time.Now)
			}
			if f.state != c.want {
				t.Errorf("state %d, want %d", f.state, c.want)
			}
		})
	}
}

func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out, s = append(out, s[:n]), s[n:]
	}
	return append(out, s)
}

// failingListener injects accept errors before handing over real ones.
type failingListener struct {
	net.Listener
	errs []error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	return l.Listener.Accept()
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestGuardedListenerSurvivesEMFILE: accept errors are retried with
// doubling, bounded back-off while the listener reports itself down; the
// next connection is served and the listener is up again.
func TestGuardedListenerSurvivesEMFILE(t *testing.T) {
	ln := listenLoopback(t)
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	errs := make([]error, 12)
	for i := range errs {
		errs[i] = emfile
	}
	errs[5] = errors.New("something else entirely")
	g := newGuardedListener(&failingListener{Listener: ln, errs: errs}, "tcp", nil, newConnLimits(10, 10), time.Second, zerolog.Nop(), nil)
	var waits []time.Duration
	var downDuring []bool
	g.sleep = func(d time.Duration) { waits = append(waits, d); downDuring = append(downDuring, g.Down()) }

	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := g.Accept()
	if err != nil {
		t.Fatalf("Accept after errors: %v", err)
	}
	defer c.Close()
	if len(waits) != 12 {
		t.Fatalf("%d back-offs for 12 errors", len(waits))
	}
	for i, d := range waits {
		want := min(acceptBackoffMin<<i, acceptBackoffMax)
		if d != want {
			t.Errorf("back-off %d = %v, want %v", i, d, want)
		}
		if !downDuring[i] {
			t.Errorf("listener not reported down during back-off %d", i)
		}
	}
	if g.Down() {
		t.Error("listener still down after a successful accept")
	}

	// Close during a back-off ends Accept with net.ErrClosed.
	g2 := newGuardedListener(&failingListener{Listener: listenLoopback(t), errs: []error{emfile, emfile, emfile}}, "tcp", nil, newConnLimits(10, 10), time.Second, zerolog.Nop(), nil)
	done := make(chan error, 1)
	go func() { _, err := g2.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	g2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

// TestGuardedListenerLimits: connections over the per-IP and total caps
// are closed at once; a slot frees when a counted connection closes.
func TestGuardedListenerLimits(t *testing.T) {
	ln := listenLoopback(t)
	var refused []string
	g := newGuardedListener(ln, "tcp", nil, newConnLimits(3, 2), time.Second, zerolog.Nop(), func(r string) { refused = append(refused, r) })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := g.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	s1, s2 := <-accepted, <-accepted
	if a3 := dial("127.0.0.1"); !closedByServer(a3) {
		t.Error("a third connection from one IP was kept (cap 2 per IP)")
	}
	dial("127.0.0.2")
	<-accepted
	if b2 := dial("127.0.0.2"); !closedByServer(b2) {
		t.Error("a fourth connection was kept (cap 3 in total)")
	}
	if g.limits.open() != 3 {
		t.Errorf("%d connections counted, want 3", g.limits.open())
	}
	s1.Close()
	s1.Close() // twice: counted once
	if g.limits.open() != 2 {
		t.Errorf("%d connections counted after a close, want 2", g.limits.open())
	}
	a4 := dial("127.0.0.1")
	s4 := <-accepted
	if closedByServer(a4) {
		t.Error("a connection within the caps was closed")
	}
	s2.Close()
	s4.Close()
	g.limits.closeAll()
	g.Close()
	for range accepted {
	}
	if len(refused) != 2 || refused[0] != "max_connections_per_ip" || refused[1] != "max_connections" {
		t.Errorf("refusals %v", refused)
	}
	_, _ = a1, a2
}

// TestIncompleteMessageTimeout: a connection that stops in the middle of a
// message, or never sends one, is cut at the deadline; an idle connection
// between messages is not.
func TestIncompleteMessageTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ln := listenLoopback(t)
	g := newGuardedListener(ln, "tcp", nil, newConnLimits(10, 10), timeout, zerolog.Nop(), nil)
	defer g.Close()
	cases := []struct {
		name    string
		send    string
		cut     bool
		waitFor time.Duration
	}{
		{"silent", "", true, timeout},
		{"half a message", "REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1\r\n", true, timeout},
		{"body owed", "OPTIONS sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc", true, timeout},
		{"complete, then idle", "OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n", false, 3 * timeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			sc, err := g.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			client.Write([]byte(c.send))
			start := time.Now()
			errc := make(chan error, 1)
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := sc.Read(buf); err != nil {
						errc <- err
						return
					}
				}
			}()
			select {
			case err := <-errc:
				var ne net.Error
				if !c.cut {
					t.Fatalf("idle connection cut after %v: %v", time.Since(start), err)
				}
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("read error %v, want a timeout", err)
				}
				if d := time.Since(start); d > timeout+time.Second {
					t.Errorf("cut after %v, want about %v", d, timeout)
				}
			case <-time.After(c.waitFor + time.Second):
				if c.cut {
					t.Fatal("incomplete message not cut at the deadline")
				}
				sc.Close()
				<-errc
			}
		})
	}
}
