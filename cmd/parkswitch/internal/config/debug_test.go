package config

import "testing"

func TestPprofListen(t *testing.T) {
	const head = "server:\n  domain: contoso.com\ndebug:\n" // lines 1–3
	for _, ok := range []string{"127.0.0.1:6060", "127.0.0.2:6060", "\"[::1]:6060\"", "localhost:6060", "127.0.0.1:0"} {
		t.Run("ok "+ok, func(t *testing.T) {
			if _, err := parse(head+"  pprof_listen: "+ok+"\n", ""); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
	tests := []struct{ value, msg string }{
		{"0.0.0.0:6060", `debug.pprof_listen "0.0.0.0:6060" is not a loopback address`},
		{"192.0.2.7:6060", `debug.pprof_listen "192.0.2.7:6060" is not a loopback address`},
		{"pbx.contoso.com:6060", `is not a loopback address`},
		{"\":6060\"", `is not a loopback address`},
		{"\"6060\"", `debug.pprof_listen "6060" is not host:port`},
		{"127.0.0.1:70000", `is not host:port`},
		{"127.0.0.1:http", `is not host:port`},
		{"[127.0.0.1]", `unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			_, err := parse(head+"  pprof_listen: "+tt.value+"\n", "")
			if tt.msg == "unknown" {
				checkProblems(t, err, []want{{"", 4, "pprof_listen must be a single value, not a list"}})
				return
			}
			checkProblems(t, err, []want{{"", 4, tt.msg}})
		})
	}
	checkProblems(t, func() error { _, err := parse(head+"  pprof: 127.0.0.1:6060\n", ""); return err }(),
		[]want{{"", 4, `unknown key "pprof" in debug: remove it or use one of pprof_listen`}})
}
