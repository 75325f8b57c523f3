package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/sip"
	"github.com/parkswitch/parkswitch/store/natsstore"
)

// stateConnectTimeout bounds how long serve waits for the state store at
// start before it gives up with exit status 1.
const stateConnectTimeout = 10 * time.Second

// openState opens the state section's store: the embedded NATS server on
// data_dir, or the cluster at nats_urls.
func openState(st config.State, addr string, log zerolog.Logger) (*natsstore.Store, error) {
	id := st.NodeID
	if id == "" {
		id = defaultNodeID()
	}
	opts := natsstore.Options{NodeID: id, NodeAddr: addr, CDRDays: st.CDRDays, CDRBytes: int64(st.CDRMaxMB) << 20, EventsBytes: int64(st.EventsMaxMB) << 20, Logger: log, URLs: st.NATSURLs}
	where := "the embedded NATS server on " + st.DataDir
	if st.Embedded() {
		if err := os.MkdirAll(st.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("state.data_dir: %w", err)
		}
		opts.DataDir = st.DataDir
	} else {
		urls := make([]string, len(st.NATSURLs))
		for i, u := range st.NATSURLs {
			urls[i] = config.RedactURL(u)
		}
		where = "NATS at " + strings.Join(urls, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateConnectTimeout)
	defer cancel()
	s, err := natsstore.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("state store (%s) cannot be opened: %w", where, err)
	}
	return s, nil
}

// defaultNodeID is the host name, kept to the characters a node ID may
// have.
func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "parkswitch"
	}
	b := []byte(h)
	for i, c := range b {
		if !config.ValidNodeID(string(c)) {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// nodeAddr is where the other nodes of a cluster reach this one over SIP:
// the advertised address (or the first listen address) and the first UDP
// listener's port.
func nodeAddr(advertise netip.Addr, listens []sip.Listen) string {
	for _, l := range listens {
		if l.Network != "udp" {
			continue
		}
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			continue
		}
		if advertise.IsValid() {
			host = advertise.String()
		}
		if p, err := strconv.Atoi(port); err == nil {
			return net.JoinHostPort(host, strconv.Itoa(p))
		}
	}
	return ""
}
