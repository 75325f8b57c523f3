package natsstore

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/storetest"
)

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// open opens a store and closes it when t ends.
func open(t testing.TB, o Options) *Store {
	t.Helper()
	if !o.keepLogger {
		o.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// harness runs the contract on stores made by mk.
func harness(mk func(t *testing.T, id string) *Store) storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, id string) store.Store { return mk(t, id) },
		Kill: func(_ *testing.T, s store.Store) { s.(*Store).kill() },
	}
}

// natsServer is one NATS server of a test, on loopback, restartable on
// the same ports and files.
type natsServer struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

func (n *natsServer) start() {
	n.t.Helper()
	o := n.opts // NewServer keeps and changes its options
	srv, err := server.NewServer(&o)
	if err != nil {
		n.t.Fatal(err)
	}
	srv.SetLoggerV2(serverLogger{testLogger(n.t).With().Str("server", o.ServerName).Logger()}, false, false, false)
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

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// startServer runs a single JetStream server on loopback.
func startServer(t testing.TB, name string) *natsServer {
	n := &natsServer{t: t, opts: server.Options{
		ServerName: name, Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
	}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// startCluster runs a JetStream cluster of n servers routed on loopback
// and waits for its meta leader.
func startCluster(t testing.TB, size int) []*natsServer {
	t.Helper()
	ports := make([]int, size)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	servers := make([]*natsServer, size)
	for i := range servers {
		o := server.Options{
			ServerName: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
			Cluster: server.ClusterOpts{Name: "parkswitch-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		servers[i] = &natsServer{t: t, opts: o}
	}
	for _, n := range servers {
		n.start()
		t.Cleanup(n.stop)
	}
	waitMeta(t, servers)
	return servers
}

// waitMeta waits until the running servers have a JetStream meta leader
// and every one is current with it.
func waitMeta(t testing.TB, servers []*natsServer) {
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

func urls(servers []*natsServer) []string {
	var out []string
	for _, n := range servers {
		out = append(out, n.url())
	}
	return out
}
