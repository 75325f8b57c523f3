package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/cmd/parkswitch/internal/config"
	"github.com/parkswitch/parkswitch/configs"
	"github.com/parkswitch/parkswitch/sip"
)

// loadConfig reads the configuration. When the operator did not name a file
// and the default one does not exist, the embedded demo configuration is
// used so that a fresh checkout or a bare binary runs.
func loadConfig(path string, explicit bool) (*config.Config, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			data, err := configs.FS.ReadFile("parkswitch.yaml")
			if err != nil {
				return nil, err
			}
			return config.Parse("(built-in) parkswitch.yaml", data, func(p string) ([]byte, error) {
				return configs.FS.ReadFile(baseName(p))
			})
		}
	}
	return config.Load(path)
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// configFlag registers --config and reports whether it was given.
func configFlag(fset *flag.FlagSet) (path *string, explicit func() bool) {
	path = fset.String("config", defaultConfig, "configuration file")
	return path, func() bool { return flagGiven(fset, "config") }
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("check")
	path, explicit := configFlag(fset)
	if code, ok := parseFlags(fset, args, "parkswitch check [--config FILE]", stdout, stderr); !ok {
		return code
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "parkswitch check: unexpected argument %q; usage: parkswitch check [--config FILE]\n", fset.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*path, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d users, %d trunks, %d policies)\n", cfg.Path, len(cfg.Users), len(cfg.Trunks), len(cfg.Policies.Policies()))
	return 0
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "parkswitch serve [--config FILE] [--log-level debug|info|warn|error] [--log-pretty]"
	fset := newFlagSet("serve")
	path, explicit := configFlag(fset)
	level := fset.String("log-level", "info", "log level: debug, info, warn, error")
	pretty := fset.Bool("log-pretty", false, "human-readable logs instead of JSON")
	if code, ok := parseFlags(fset, args, usage, stdout, stderr); !ok {
		return code
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "parkswitch serve: unexpected argument %q; usage: %s\n", fset.Arg(0), usage)
		return 2
	}
	cfg, err := loadConfig(*path, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	out := newLogWriter(stderr, logWriterMax)
	log, err := newLogger(out, *level, *pretty)
	if err != nil {
		fmt.Fprintln(stderr, "parkswitch:", err)
		return 2
	}
	out.start(func(lines uint64) {
		log.Warn().Uint64("lines", lines).Msg("the log's reader fell behind: lines dropped")
	})
	defer out.close()
	sip.SetStackLogger(log)
	srv, err := newServer(cfg, log, serverOptions{logDropped: out.dropped.Load})
	if err != nil {
		log.Error().Err(err).Msg("cannot build the server")
		return 1
	}
	if err := srv.start(); err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	log.Info().Str("config", cfg.Path).Str("version", version).Msg("parkswitch serving")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-hup:
			srv.reloader.reload("SIGHUP")
		case <-ctx.Done():
			break wait
		}
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("shutdown incomplete")
	}
	return 0
}

// logTimeFormat is RFC 3339 with the date and milliseconds, in both the
// JSON and the console output: a line must say when, not only what time.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() {
	// A process-wide setting of zerolog; set once, before any logger runs.
	zerolog.TimeFieldFormat = logTimeFormat
}

// newLogger builds the process logger: JSON lines by default, console
// output for people reading a terminal.
func newLogger(w io.Writer, level string, pretty bool) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("unknown log level %q", level)
	}
	if pretty {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: logTimeFormat}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// cmdUnban asks the running switch, over the admin API at the configured
// server.http_listen, to lift the ban on an IP address.
func cmdUnban(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "parkswitch unban [--config FILE] [--token T] IP"
	fset := newFlagSet("unban")
	path, explicit := configFlag(fset)
	token := fset.String("token", os.Getenv("PARKSWITCH_TOKEN"), "admin API bearer token (default $PARKSWITCH_TOKEN)")
	if code, ok := parseFlags(fset, args, usage, stdout, stderr); !ok {
		return code
	}
	if fset.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: "+usage)
		return 2
	}
	ip, err := netip.ParseAddr(fset.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "parkswitch unban: %q is not an IP address\n", fset.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*path, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch err := unban(ctx, adminURL(cfg.Server.HTTPListen), *token, ip); {
	case errors.Is(err, errNotBanned):
		// Lifting what is not there leaves the wanted state: not an error.
		fmt.Fprintf(stdout, "%s is not banned: nothing to lift\n", ip)
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "parkswitch unban:", err)
		return 1
	}
	fmt.Fprintf(stdout, "ban on %s lifted\n", ip)
	return 0
}

// errNotBanned: the switch holds no ban on that address.
var errNotBanned = errors.New("not banned")

func unban(ctx context.Context, base, token string, ip netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/api/v1/bans/"+url.PathEscape(ip.String()), nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is the switch running? %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	switch res.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", ip, errNotBanned)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("the admin API refused the request (%s): pass --token or set PARKSWITCH_TOKEN", res.Status)
	}
	return fmt.Errorf("the admin API answered %s: %s", res.Status, strings.TrimSpace(string(body)))
}

// adminURL turns server.http_listen into the URL a local client reaches
// it at: a wildcard listener is reached on loopback.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if err == nil && ip.Is6() {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
