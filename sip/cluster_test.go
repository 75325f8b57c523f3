package sip

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkswitch/parkswitch/media"
	"github.com/parkswitch/parkswitch/store"
	"github.com/parkswitch/parkswitch/store/memstore"
)

// clusterSwitch is node a of a memstore cluster with live nodes b at
// 127.0.0.2:5060 and c, which published no address. It is never started.
func clusterSwitch(t *testing.T) (*Switch, *memstore.Backend) {
	t.Helper()
	be := memstore.New(memstore.Options{})
	ports, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), 40020, 40030)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Domain: "contoso.com", Listen: []Listen{{"udp", "127.0.0.1:0"}}, Ports: ports,
		Directory: NewDirectory([]User{{ID: "1001@contoso.com", Password: "x"}, {ID: "1002@contoso.com", Password: "y"}}, nil),
		Store:     be.Open("a", "127.0.0.1:5060"),
	})
	if err != nil {
		t.Fatal(err)
	}
	be.Open("b", "127.0.0.2:5060")
	be.Open("c", "")
	if err := s.refreshNodes(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, be
}

func TestFromNode(t *testing.T) {
	s, _ := clusterSwitch(t)
	tests := []struct {
		name, hop, src, transport string
		want                      string
		ok                        bool
	}{
		{"node b from its address", "b;user=1001", "127.0.0.2:5060", "UDP", "b", true},
		{"no marker", "", "127.0.0.2:5060", "UDP", "", false},
		{"node b's IP, another port", "b", "127.0.0.2:40000", "UDP", "", false},
		{"b's address claiming to be c", "c", "127.0.0.2:5060", "UDP", "", false},
		{"this node's own address", "a", "127.0.0.1:5060", "UDP", "", false},
		{"over TCP", "b", "127.0.0.2:5060", "TCP", "", false},
		{"a node that is not alive", "d", "127.0.0.4:5060", "UDP", "", false},
		{"empty node id", ";user=1001", "127.0.0.2:5060", "UDP", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1002", Host: "contoso.com"})
			if tt.hop != "" {
				req.AppendHeader(sip.NewHeader(hopHeader, tt.hop))
			}
			req.SetSource(tt.src)
			req.SetTransport(tt.transport)
			id, ok := s.fromNode(req)
			if ok != tt.ok || (ok && id != tt.want) {
				t.Errorf("fromNode = %q, %v; want %q, %v", id, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestHopUser(t *testing.T) {
	for hop, want := range map[string]string{
		"a;user=1001":        "1001",
		"a; User=ken.myer ":  "ken.myer",
		"a":                  "",
		"a;other=1;user=x+y": "x+y",
		"":                   "",
	} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "contoso.com"})
		if hop != "" {
			req.AppendHeader(sip.NewHeader(hopHeader, hop))
		}
		if got := hopUser(req); got != want {
			t.Errorf("hopUser(%q) = %q, want %q", hop, got, want)
		}
	}
}

func TestRemoteTargets(t *testing.T) {
	s, be := clusterSwitch(t)
	ctx := context.Background()
	caller, _ := s.dir.Load().UserByName("1001")
	callee, _ := s.dir.Load().UserByName("1002")
	put := func(nodes ...string) {
		other := be.Open("writer", "")
		defer other.Close()
		var bs []store.Binding
		for i, n := range nodes {
			bs = append(bs, store.Binding{User: "1002", Contact: "sip:1002@127.0.0.9:" + string(rune('1'+i)) + "000",
				Source: "127.0.0.9:1000", Transport: "UDP", Expires: time.Now().Add(time.Minute), CallID: "c", CSeq: 1, Node: n})
		}
		if _, err := other.UpdateBindings(ctx, "1002", func([]store.Binding) ([]store.Binding, error) { return bs, nil }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		nodes []string
		dests []string
	}{
		{"on this node only", []string{"a"}, nil},
		{"two phones on b: one INVITE to b", []string{"b", "b"}, []string{"127.0.0.2:5060"}},
		{"on this node and b", []string{"a", "b"}, []string{"127.0.0.2:5060"}},
		{"on a node that is gone", []string{"d"}, nil},
		{"on a node with no address", []string{"c"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(tt.nodes...)
			ts := s.remoteTargets(ctx, callee, party{user: caller, name: caller.Name})
			if len(ts) != len(tt.dests) {
				t.Fatalf("targets %+v, want %v", ts, tt.dests)
			}
			for i, tg := range ts {
				if tg.dest != tt.dests[i] || tg.hop != "a;user=1001" || tg.transport != "UDP" || tg.uri.User != "1002" {
					t.Errorf("target %+v, want %s marked a;user=1001", tg, tt.dests[i])
				}
			}
		})
	}
}
