package sip

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the connection limits (SPEC §13).
const (
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 100
	DefaultIncompleteTimeout   = 10 * time.Second
)

// Accept back-off bounds: the first retry after an accept error waits
// acceptBackoffMin, each further one twice as long, up to acceptBackoffMax.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// connLimits counts the switch's open stream connections (TCP and TLS
// together) in total and per source IP.
type connLimits struct {
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[netip.Addr]int
	live  map[*streamConn]struct{}
}

func newConnLimits(max, perIP int) *connLimits {
	return &connLimits{max: max, perIP: perIP, byIP: make(map[netip.Addr]int), live: make(map[*streamConn]struct{})}
}

// admit counts c in, or says which limit it is over.
func (cl *connLimits) admit(c *streamConn) (reason string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	switch {
	case cl.total >= cl.max:
		return "max_connections"
	case cl.byIP[c.ip] >= cl.perIP:
		return "max_connections_per_ip"
	}
	cl.total++
	cl.byIP[c.ip]++
	cl.live[c] = struct{}{}
	return ""
}

func (cl *connLimits) release(c *streamConn) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.live[c]; !ok {
		return
	}
	delete(cl.live, c)
	cl.total--
	if n := cl.byIP[c.ip] - 1; n > 0 {
		cl.byIP[c.ip] = n
	} else {
		delete(cl.byIP, c.ip)
	}
}

// open reports the connections counted in.
func (cl *connLimits) open() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.total
}

// closeAll closes every counted connection; their readers then end.
func (cl *connLimits) closeAll() {
	cl.mu.Lock()
	conns := make([]*streamConn, 0, len(cl.live))
	for c := range cl.live {
		conns = append(conns, c)
	}
	cl.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// guardedListener is what the switch hands to sipgo's ServeTCP/ServeTLS
// instead of the bare socket.
//
// sipgo (v1.7.3) TransportTCP.Serve returns on the first error Accept
// gives, temporary or not, and nothing restarts it: one burst of EMFILE
// (descriptors exhausted, e.g. by idle connections) stops the listener for
// good. sipgo also has no connection limits and no deadline for a
// half-sent message. So Accept here never fails except when the listener
// is closed: other errors are retried with bounded exponential back-off
// (as net/http does), and while they persist the listener reports itself
// down. Connections over the caps are closed at once, before sipgo sees
// them; the others are wrapped to enforce the incomplete-message deadline
// and, for TLS, handshaken by crypto/tls on their first read, in sipgo's
// reader goroutine rather than here.
type guardedListener struct {
	net.Listener
	network    string // "tcp" or "tls"
	tls        *tls.Config
	limits     *connLimits
	incomplete time.Duration
	log        zerolog.Logger
	sleep      func(time.Duration) // tests shorten the back-off
	refused    func(reason string)

	down      atomic.Bool
	closed    atomic.Bool
	closeCh   chan struct{}
	closeOnce sync.Once
	warn      logLimiter
}

func newGuardedListener(ln net.Listener, network string, tcfg *tls.Config, limits *connLimits, incomplete time.Duration, log zerolog.Logger, refused func(string)) *guardedListener {
	return &guardedListener{
		Listener: ln, network: network, tls: tcfg, limits: limits, incomplete: incomplete,
		log:   log.With().Str("listener", network+"://"+ln.Addr().String()).Logger(),
		sleep: nil, refused: refused, closeCh: make(chan struct{}),
		warn: logLimiter{every: time.Second, burst: 1},
	}
}

// Accept returns the next connection within the limits. Its only error is
// net.ErrClosed, after Close.
func (g *guardedListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		raw, err := g.Listener.Accept()
		if err != nil {
			if g.closed.Load() || errors.Is(err, net.ErrClosed) {
				return nil, net.ErrClosed
			}
			if backoff == 0 {
				backoff = acceptBackoffMin
			} else if backoff *= 2; backoff > acceptBackoffMax {
				backoff = acceptBackoffMax
			}
			if !g.down.Swap(true) {
				g.log.Error().Err(err).Msg("sip listener cannot accept; retrying")
			}
			if !g.wait(backoff) {
				return nil, net.ErrClosed
			}
			continue
		}
		if backoff != 0 && g.down.Swap(false) {
			g.log.Warn().Msg("sip listener accepting again")
		}
		backoff = 0
		c := newStreamConn(raw, g)
		if reason := g.limits.admit(c); reason != "" {
			raw.Close()
			if g.refused != nil {
				g.refused(reason)
			}
			if n, ok := g.warn.allow(time.Now()); ok {
				g.log.Warn().Str("limit", reason).Str("source", raw.RemoteAddr().String()).Int("suppressed", n).Msg("connection refused: over the limit")
			}
			continue
		}
		return c, nil
	}
}

func (g *guardedListener) wait(d time.Duration) bool {
	if g.sleep != nil {
		g.sleep(d)
		return !g.closed.Load()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.closeCh:
		return false
	}
}

// Close stops accepting; connections already handed out stay open.
func (g *guardedListener) Close() error {
	g.closed.Store(true)
	g.closeOnce.Do(func() { close(g.closeCh) })
	return g.Listener.Close()
}

// Down reports whether the listener is failing to accept.
func (g *guardedListener) Down() bool { return g.down.Load() }

// streamConn is one accepted TCP or TLS connection: counted in the limits
// until closed, and closed by its read deadline when a message (or, for a
// new connection, the first one) stays incomplete for too long.
type streamConn struct {
	net.Conn // *net.TCPConn, or *tls.Conn over it
	ip       netip.Addr
	limits   *connLimits
	timeout  time.Duration
	once     sync.Once

	// Touched by the reader goroutine only.
	frame    framer
	deadline bool // a read deadline is set
}

func newStreamConn(raw net.Conn, g *guardedListener) *streamConn {
	c := &streamConn{Conn: raw, limits: g.limits, timeout: g.incomplete}
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = ta.AddrPort().Addr().Unmap()
	}
	if g.tls != nil {
		c.Conn = tls.Server(raw, g.tls)
	}
	// A new connection owes its first message (and, over TLS, the
	// handshake) within the timeout too.
	c.frame.started = time.Now()
	c.frame.state = frameStart
	return c
}

// Read enforces the incomplete-message deadline: while a message is
// partly read, a read may block only until timeout after its first byte.
func (c *streamConn) Read(b []byte) (int, error) {
	if c.timeout > 0 {
		if c.frame.state != frameIdle {
			c.Conn.SetReadDeadline(c.frame.started.Add(c.timeout))
			c.deadline = true
		} else if c.deadline {
			c.Conn.SetReadDeadline(time.Time{})
			c.deadline = false
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.frame.feed(b[:n], time.Now)
	}
	return n, err
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.limits.release(c) })
	return err
}

// framer follows SIP message boundaries on a stream (RFC 3261 §7.5: start
// line and headers up to an empty line, then Content-Length bytes of body)
// only to know whether the peer is in the middle of a message. It does not
// parse; sipgo does.
type framer struct {
	state   frameState
	started time.Time // when the current message's first byte arrived
	line    []byte    // the header line being read, first maxFrameLine bytes
	lineLen int       // bytes of the current line so far
	length  int       // Content-Length seen in this message's headers
	body    int       // body bytes still to come
}

type frameState uint8

const (
	frameIdle   frameState = iota // between messages: CRLF keep-alives only
	frameStart                    // connected, nothing yet (the first message is owed)
	frameHeader                   // inside start line and headers
	frameBody                     // inside the body
)

// maxFrameLine is how much of a header line is kept to find Content-Length.
const maxFrameLine = 64

func (f *framer) feed(b []byte, now func() time.Time) {
	for i := 0; i < len(b); i++ {
		switch f.state {
		case frameIdle, frameStart:
			if b[i] == '\r' || b[i] == '\n' {
				continue
			}
			if f.state == frameIdle {
				f.started = now()
			}
			f.state, f.line, f.lineLen, f.length = frameHeader, f.line[:0], 0, 0
			i--
		case frameHeader:
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			if room := maxFrameLine - len(f.line); room > 0 {
				f.line = append(f.line, b[i:min(j, i+room)]...)
			}
			f.lineLen += j - i
			if j == len(b) {
				return
			}
			i = j // at '\n'
			line := f.line
			if len(line) > 0 && line[len(line)-1] == '\r' && f.lineLen <= maxFrameLine {
				line = line[:len(line)-1]
			}
			if f.lineLen == 0 || (f.lineLen == 1 && len(line) == 0) {
				// The empty line: headers are over.
				if f.length > 0 {
					f.state, f.body = frameBody, f.length
				} else {
					f.state = frameIdle
				}
			} else if n, ok := contentLength(line); ok {
				f.length = n
			}
			f.line, f.lineLen = f.line[:0], 0
		case frameBody:
			take := min(f.body, len(b)-i)
			f.body -= take
			i += take - 1
			if f.body == 0 {
				f.state = frameIdle
			}
		}
	}
}

// contentLength reads a Content-Length (or compact "l") header line.
func contentLength(line []byte) (int, bool) {
	colon := -1
	for i, ch := range line {
		if ch == ':' {
			colon = i
			break
		}
	}
	if colon < 0 {
		return 0, false
	}
	name := trimSpace(line[:colon])
	if !equalFoldASCII(name, "content-length") && !equalFoldASCII(name, "l") {
		return 0, false
	}
	v := trimSpace(line[colon+1:])
	if len(v) == 0 {
		return 0, false
	}
	n := 0
	for _, ch := range v {
		if ch < '0' || ch > '9' || n > 1<<26 {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != s[i] {
			return false
		}
	}
	return true
}
