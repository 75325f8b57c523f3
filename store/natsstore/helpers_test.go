package natsstore

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/natsstore/natstest"
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

// The servers of the tests are natstest's.
type natsServer = natstest.Server

func startServer(t testing.TB, name string) *natsServer { return natstest.StartServer(t, name) }

func startCluster(t testing.TB, size int) []*natsServer { return natstest.StartCluster(t, size) }

func urls(servers []*natsServer) []string { return natstest.URLs(servers) }
