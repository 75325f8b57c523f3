// Package natstest runs real NATS JetStream servers on loopback for tests:
// one server, or a cluster routed on 127.0.0.1, each restartable on the
// same ports and files so that a test can stop the store under a switch
// and bring it back.
package natstest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// Server is one NATS server of a test.
type Server struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// Start runs the server (again), on the ports it had before.
func (n *Server) Start() {
	n.t.Helper()
	o := n.opts // NewServer keeps and changes its options
	srv, err := server.NewServer(&o)
	if err != nil {
		n.t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(n.t)).Level(zerolog.WarnLevel).With().Str("server", o.ServerName).Logger()
	srv.SetLoggerV2(logger{log}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		n.t.Fatalf("%s not ready in 30 s", o.ServerName)
	}
	n.srv = srv
	// Keep the ports it got, so that a restart comes back where clients look.
	n.opts.Port = srv.Addr().(*net.TCPAddr).Port
	if ca := srv.ClusterAddr(); ca != nil {
		n.opts.Cluster.Port = ca.Port
	}
}

// Stop shuts the server down; Start brings it back.
func (n *Server) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// Running reports whether the server is started.
func (n *Server) Running() bool { return n.srv != nil }

// Raw is the running server, nil when stopped.
func (n *Server) Raw() *server.Server { return n.srv }

// URL is where clients reach the server.
func (n *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// StartServer runs a single JetStream server on loopback, stopped when t
// ends.
func StartServer(t testing.TB, name string) *Server {
	t.Helper()
	n := &Server{t: t, opts: server.Options{
		ServerName: name, Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
	}}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// StartCluster runs a JetStream cluster of size servers routed on loopback
// and waits for its meta leader. Each server takes a route port the kernel
// gives it and routes to those started before it (gossip joins the rest),
// rather than to ports picked in advance, which another socket could take
// before the server binds them. Once all run, each one's options name
// every route, so that a restarted server finds the others.
func StartCluster(t testing.TB, size int) []*Server {
	t.Helper()
	servers := make([]*Server, size)
	var routes []string
	for i := range servers {
		n := &Server{t: t, opts: server.Options{
			ServerName: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
			Cluster: server.ClusterOpts{Name: "parkswitch-test", Host: "127.0.0.1", Port: -1},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}}
		n.Start()
		t.Cleanup(n.Stop)
		servers[i] = n
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", n.opts.Cluster.Port))
	}
	for _, n := range servers {
		n.opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
	WaitMeta(t, servers)
	return servers
}

// WaitMeta waits until the running servers have a JetStream meta leader
// and every one is current with it.
func WaitMeta(t testing.TB, servers []*Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Ready when the leader sees every running server as a JetStream
		// peer with stats: before that, placing R3 streams fails.
		running, peers, current := 0, 0, true
		for _, n := range servers {
			if n.srv == nil {
				continue
			}
			running++
			if n.srv.JetStreamIsLeader() {
				peers = len(n.srv.JetStreamClusterPeers())
			}
			current = current && n.srv.JetStreamIsCurrent()
		}
		if current && peers == running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no JetStream meta leader in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URLs lists where the servers are reached.
func URLs(servers []*Server) []string {
	var out []string
	for _, n := range servers {
		out = append(out, n.URL())
	}
	return out
}

// logger writes the server's lines to the test log.
type logger struct{ l zerolog.Logger }

func (l logger) Noticef(format string, v ...any) { l.l.Debug().Msgf(format, v...) }
func (l logger) Warnf(format string, v ...any)   { l.l.Warn().Msgf(format, v...) }
func (l logger) Fatalf(format string, v ...any)  { l.l.Error().Msgf(format, v...) }
func (l logger) Errorf(format string, v ...any)  { l.l.Error().Msgf(format, v...) }
func (l logger) Debugf(format string, v ...any)  { l.l.Trace().Msgf(format, v...) }
func (l logger) Tracef(format string, v ...any)  { l.l.Trace().Msgf(format, v...) }
