package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// profiler serves net/http/pprof on debug.pprof_listen, a loopback
// address (config refuses any other), apart from the admin API so that
// its handlers are never reachable through the API's listener.
type profiler struct {
	srv  *http.Server
	done chan struct{}
	addr string
}

// startProfiler listens on addr; "" starts nothing and returns nil.
func startProfiler(addr string, log zerolog.Logger) (*profiler, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug.pprof_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &profiler{
		// No WriteTimeout: a CPU profile or a trace answers after its
		// seconds= parameter.
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10},
		done: make(chan struct{}),
		addr: ln.Addr().String(),
	}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("pprof server stopped")
		}
	}()
	log.Info().Str("pprof", p.addr).Msg("profiles served on loopback")
	return p, nil
}

// close stops the listener; a profile being taken is cut short.
func (p *profiler) close() {
	if p == nil {
		return
	}
	_ = p.srv.Close()
	<-p.done
}
