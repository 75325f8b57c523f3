package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/park"
	"github.com/parkswitch/parkswitch/sip"
)

// reloader applies a changed configuration to a running server: users,
// trunks, call park policies, park settings and webhooks. A file that fails
// validation is refused as a whole; what is in force stays, and nothing
// parked is touched.
type reloader struct {
	srv      *server
	fromFile bool // false for the built-in configuration: nothing to re-read

	mu       sync.Mutex
	cfg      *config.Config
	lastErr  error
	lastTime time.Time

	success prometheus.Gauge
	results *prometheus.CounterVec
}

func newReloader(srv *server, reg prometheus.Registerer) *reloader {
	r := &reloader{
		srv: srv, cfg: srv.cfg,
		fromFile: fileExists(srv.cfg.Path),
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parkswitch_config_last_reload_successful",
			Help: "1 when the last configuration reload was applied, 0 when it was refused.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkswitch_config_reloads_total", Help: "Configuration reloads, by result.",
		}, []string{"result"}),
	}
	r.success.Set(1)
	reg.MustRegister(r.success, r.results)
	return r
}

// status reports when the last reload was tried and, if it was refused,
// why.
func (r *reloader) status() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastTime, r.lastErr
}

// reload re-reads the configuration files and applies them when valid.
func (r *reloader) reload(why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.srv.log.With().Str("trigger", why).Logger()
	if !r.fromFile {
		log.Info().Msg("the built-in configuration has nothing to reload")
		return nil
	}
	cfg, err := config.Load(r.cfg.Path)
	if err == nil {
		var dir *sip.Directory
		if dir, err = directoryOf(cfg); err == nil {
			r.srv.sw.SetDirectory(dir)
		}
	}
	r.lastTime = time.Now()
	if err != nil {
		r.lastErr = err
		r.success.Set(0)
		r.results.WithLabelValues("refused").Inc()
		log.Error().Str("problems", err.Error()).Msg("configuration refused: the previous one stays in force")
		return err
	}
	sw := r.srv.sw
	r.srv.api.set(cfg.HTTP)
	sw.SetPolicies(cfg.Policies)
	sw.SetParkNumbers(sip.ParkNumbers{ParkUser: cfg.Park.ParkUser, RetrievePrefix: cfg.Park.RetrievePrefix, DTMFCode: cfg.Park.DTMFCode})
	sw.Lot().SetConfig(park.Config{Ringback: cfg.Park.Ringback(), MaxRingbacks: cfg.Park.MaxRingbacks, Fallback: cfg.Park.Fallback})
	r.srv.webhooks.apply(cfg.Notify)
	if restartNeeded(r.cfg, cfg) {
		log.Warn().Msg("listen addresses, domain, digest algorithms, RTP ports, security limits, music or announcements changed: they take effect after a restart")
	}
	r.cfg, r.lastErr = cfg, nil
	r.success.Set(1)
	r.results.WithLabelValues("applied").Inc()
	log.Info().Int("users", len(cfg.Users)).Int("trunks", len(cfg.Trunks)).Int("policies", len(cfg.Policies.Policies())).Msg("configuration reloaded")
	return nil
}

// restartNeeded reports changes a running server cannot apply.
func restartNeeded(old, cur *config.Config) bool {
	return old.Server.Domain != cur.Server.Domain ||
		!slices.Equal(old.Server.SIPListen, cur.Server.SIPListen) ||
		old.Server.HTTPListen != cur.Server.HTTPListen ||
		old.Server.AdvertiseIP != cur.Server.AdvertiseIP ||
		!slices.Equal(old.Server.DigestAlgorithms, cur.Server.DigestAlgorithms) ||
		old.Media != cur.Media || old.Security != cur.Security ||
		old.Park.Announce != cur.Park.Announce || old.Park.PromptsDir != cur.Park.PromptsDir
}

// watcher watches the directories of the main configuration and the
// policy file, not the files, so that an editor replacing a file (write to
// a temp file, rename over) is seen too.
type watcher struct {
	fs    *fsnotify.Watcher
	files map[string]bool
}

// newWatcher starts watching before it returns, so no change made after
// the server started is missed.
func (r *reloader) newWatcher() (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fs: fw, files: map[string]bool{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range []string{r.cfg.Path, r.cfg.Park.PolicyFile} {
		abs, err := filepath.Abs(f)
		if err == nil {
			err = fw.Add(filepath.Dir(abs))
		}
		if err != nil {
			fw.Close()
			return nil, err
		}
		w.files[abs] = true
	}
	return w, nil
}

// watch reloads on every change of the watched files until ctx ends;
// bursts of events are folded into one reload.
func (r *reloader) watch(ctx context.Context, wt *watcher) error {
	w, files := wt.fs, wt.files
	defer w.Close()
	const settle = 150 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if abs, err := filepath.Abs(ev.Name); err == nil && files[abs] {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			r.srv.log.Warn().Err(err).Msg("file watcher")
		case <-timer.C:
			r.reload("file changed")
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
