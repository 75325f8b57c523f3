package memstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
	"github.com/parkswitch/parkswitch/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	b := memstore.New(memstore.Options{})
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, id string) store.Store {
			s := b.Open(id, "127.0.0.1:5060")
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Kill: func(_ *testing.T, s store.Store) { s.(*memstore.Store).Kill() },
	})
}
