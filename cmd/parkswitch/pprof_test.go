package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPprofListen: debug.pprof_listen serves the runtime's profiles on its
// own loopback listener, and the admin API's listener serves none of them.
func TestPprofListen(t *testing.T) {
	ts := startServer(t, "debug:\n  pprof_listen: 127.0.0.1:0\n", nil)
	if ts.pprof == nil {
		t.Fatal("no profiler started")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, string(body)
	}
	if code, body := get("http://" + ts.pprof.addr + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile: %d %.200q", code, body)
	}
	if code, body := get("http://" + ts.pprof.addr + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile:") {
		t.Errorf("heap profile: %d %.200q", code, body)
	}
	if code, body := get("http://" + ts.httpAddr() + "/debug/pprof/goroutine?debug=1"); strings.Contains(body, "goroutine profile:") {
		t.Errorf("the admin listener serves profiles: %d", code)
	}
}
