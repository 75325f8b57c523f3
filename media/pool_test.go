package media

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

func TestNewPortPool(t *testing.T) {
	tests := []struct {
		name     string
		ip       netip.Addr
		min, max int
		capacity int
		first    uint16
		wantErr  bool
	}{
		{name: "even range", ip: loopback, min: 40000, max: 40009, capacity: 5, first: 40000},
		{name: "odd min moves up", ip: loopback, min: 40001, max: 40010, capacity: 4, first: 40002},
		{name: "odd max loses its half pair", ip: loopback, min: 40000, max: 40004, capacity: 2, first: 40000},
		{name: "one pair", ip: loopback, min: 40000, max: 40001, capacity: 1, first: 40000},
		{name: "IPv6", ip: netip.IPv6Loopback(), min: 40000, max: 40003, capacity: 2, first: 40000},
		{name: "no pair", ip: loopback, min: 40000, max: 40000, wantErr: true},
		{name: "odd single port", ip: loopback, min: 40001, max: 40002, wantErr: true},
		{name: "reversed", ip: loopback, min: 40010, max: 40000, wantErr: true},
		{name: "port zero", ip: loopback, min: 0, max: 10, wantErr: true},
		{name: "beyond 65535", ip: loopback, min: 65534, max: 65536, wantErr: true},
		{name: "no IP", min: 40000, max: 40010, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPortPool(tt.ip, tt.min, tt.max)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewPortPool(%d, %d) = nil error", tt.min, tt.max)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Capacity() != tt.capacity {
				t.Errorf("Capacity = %d, want %d", p.Capacity(), tt.capacity)
			}
			if p.base != int(tt.first) {
				t.Errorf("first RTP port = %d, want %d", p.base, tt.first)
			}
			if p.InUse() != 0 {
				t.Errorf("InUse = %d on a new pool", p.InUse())
			}
		})
	}
}

func TestPortPoolAllocation(t *testing.T) {
	p := testPool(t, 4)
	lo, hi := p.base, p.base+2*p.Capacity()-1
	seen := map[uint16]bool{}
	var eps []*Endpoint
	for range p.Capacity() {
		e := openEndpoint(t, p)
		eps = append(eps, e)
		port := e.Addr().Port()
		if port%2 != 0 || int(port) < lo || int(port)+1 > hi {
			t.Errorf("RTP port %d: want even, RTCP inside %d-%d", port, lo, hi)
		}
		if e.Addr().Addr() != loopback {
			t.Errorf("Addr = %v, want the pool's IP", e.Addr())
		}
		if seen[port] {
			t.Errorf("port %d handed out twice", port)
		}
		seen[port] = true
	}
	if p.InUse() != p.Capacity() {
		t.Errorf("InUse = %d, want %d", p.InUse(), p.Capacity())
	}

	if _, err := p.Open(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("Open on a full pool: %v, want ErrNoPorts", err)
	}

	// Released pairs come back, the least recently used first.
	freed := eps[1].Addr()
	eps[1].Close()
	if p.InUse() != p.Capacity()-1 {
		t.Errorf("InUse after Close = %d, want %d", p.InUse(), p.Capacity()-1)
	}
	e := openEndpoint(t, p)
	if e.Addr() != freed {
		t.Errorf("reopened %v, want the freed %v", e.Addr(), freed)
	}
	// The sockets are really bound: a second bind of the pair must fail.
	for _, port := range []uint16{e.Addr().Port(), e.Addr().Port() + 1} {
		if fd, err := openUDP(netip.AddrPortFrom(e.Addr().Addr(), port)); err == nil {
			closeFD(fd)
			t.Errorf("second bind of port %d of an allocated pair succeeded", port)
		}
	}

	for _, e := range eps {
		e.Close()
	}
	e.Close()
	if p.InUse() != 0 {
		t.Errorf("InUse = %d after closing everything", p.InUse())
	}
}

func TestPortPoolRoundRobin(t *testing.T) {
	p := testPool(t, 3)
	a := openEndpoint(t, p)
	first := a.Addr()
	a.Close()
	b := openEndpoint(t, p)
	if b.Addr() == first {
		t.Errorf("just released %v reused while other pairs are free", first)
	}
}

func TestPortPoolSkipsPortsInUse(t *testing.T) {
	p := testPool(t, 3)
	// Another process holds the RTCP port of the first pair.
	listen(t, netip.AddrPortFrom(loopback, uint16(p.base+1)))
	e := openEndpoint(t, p)
	if int(e.Addr().Port()) == p.base {
		t.Fatalf("got the pair whose RTCP port is taken")
	}
	if p.InUse() != 1 {
		t.Errorf("InUse = %d, want 1 (the refused pair is not held)", p.InUse())
	}
}

func TestPortPoolAllRefused(t *testing.T) {
	p := testPool(t, 2)
	listen(t, netip.AddrPortFrom(loopback, uint16(p.base)))
	listen(t, netip.AddrPortFrom(loopback, uint16(p.base+2)))
	if _, err := p.Open(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("Open with every port taken: %v, want ErrNoPorts", err)
	}
	if p.InUse() != 0 {
		t.Errorf("InUse = %d after failed Open", p.InUse())
	}
}

func TestPortPoolConcurrent(t *testing.T) {
	p := testPool(t, 8)
	before := OpenEndpoints()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 40 {
				e, err := p.Open()
				if errors.Is(err, ErrNoPorts) {
					continue // more openers than pairs: expected
				}
				if err != nil {
					t.Error(err)
					return
				}
				if n := p.InUse(); n > p.Capacity() {
					t.Errorf("InUse %d > Capacity %d", n, p.Capacity())
				}
				e.Close()
			}
		})
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Errorf("InUse = %d after concurrent Open/Close", p.InUse())
	}
	if OpenEndpoints() != before {
		t.Errorf("OpenEndpoints = %d, want %d", OpenEndpoints(), before)
	}
}

func TestOpenPort(t *testing.T) {
	p, err := NewPortPool(netip.MustParseAddr("127.0.0.1"), 31000, 31009)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := p.OpenPort(31004)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if ep.Addr().Port() != 31004 || p.InUse() != 1 {
		t.Errorf("opened %v, in use %d", ep.Addr(), p.InUse())
	}
	for _, port := range []int{31004, 31005, 30998, 31010} {
		if _, err := p.OpenPort(port); !errors.Is(err, ErrNoPorts) {
			t.Errorf("OpenPort(%d) = %v, want ErrNoPorts", port, err)
		}
	}
	if p.InUse() != 1 {
		t.Errorf("refusals changed the count: %d", p.InUse())
	}
	// Open skips the pair OpenPort holds.
	for range 4 {
		e, err := p.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if e.Addr().Port() == 31004 {
			t.Error("Open handed out the pair OpenPort holds")
		}
	}
}
