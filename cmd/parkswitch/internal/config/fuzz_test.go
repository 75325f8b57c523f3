package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/parkswitch/parkswitch/configs"
	"github.com/parkswitch/parkswitch/policy"
)

// FuzzParse runs the configuration loader on arbitrary main and policy
// files: nothing may panic; a refusal is a list of problems, each in one
// of the two files at a line they have and with a message; an accepted
// configuration holds what the server relies on.
func FuzzParse(f *testing.F) {
	demo, err := fs.ReadFile(configs.FS, "parkswitch.yaml")
	if err != nil {
		f.Fatal(err)
	}
	demoPolicies, err := fs.ReadFile(configs.FS, "policies.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(demo, demoPolicies)
	f.Add([]byte("server:\n  domain: contoso.com\n  http_listen: 0.0.0.0:8080\nhttp:\n  tokens:\n    - {name: ci, token: 0123456789abcdefghijklmn, role: viewer}\n"), []byte(parkPolicy))
	f.Add([]byte("server:\n  domain: contoso.com\ntrunks:\n  - {name: in, address: 192.0.2.10:5060}\n"), []byte(""))
	f.Add([]byte("server:\n  domain: \"contoso.com\n  sip_listen: [udp://0.0.0.0:99999\n"), []byte("policies: [\n"))
	goldens, _ := filepath.Glob("../../../../testdata/policy_cli/*.golden")
	for _, g := range goldens {
		if data, err := os.ReadFile(g); err == nil && bytes.Contains(data, []byte("policies:")) {
			f.Add(demo, data)
		}
	}
	f.Fuzz(func(t *testing.T, main, policies []byte) {
		read := func(name string) ([]byte, error) {
			if filepath.Base(name) == "policies.yaml" {
				return policies, nil
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		c, err := Parse("parkswitch.yaml", main, read)
		if err != nil {
			var ps policy.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %v (%T) is not a list of problems", err, err)
			}
			lines := map[string]int{"parkswitch.yaml": lineCount(main), "policies.yaml": lineCount(policies)}
			for _, p := range ps {
				n, ok := lines[filepath.Base(p.File)]
				if !ok || p.Line < 0 || p.Line > n || p.Msg == "" {
					t.Fatalf("problem %q: file, line (of %d) or message is wrong", p.Error(), n)
				}
			}
			if c != nil {
				t.Fatal("Parse returned a configuration with its problems")
			}
			return
		}
		if c.Server.Domain == "" || len(c.Server.SIPListen) == 0 || c.Policies == nil || len(c.Server.DigestAlgorithms) == 0 {
			t.Fatalf("accepted configuration lacks a domain, listener, policies or digest algorithms: %+v", c.Server)
		}
		if c.Media.RTPPortMin >= c.Media.RTPPortMax {
			t.Fatalf("accepted RTP range %d–%d", c.Media.RTPPortMin, c.Media.RTPPortMax)
		}
		for _, tk := range c.HTTP.Tokens {
			if len(tk.Token) < MinTokenLength || (tk.Role != RoleAdmin && tk.Role != RoleViewer) {
				t.Fatalf("accepted token %+v", tk)
			}
		}
		for _, u := range c.HTTP.Users {
			if u.Role != RoleAdmin && u.Role != RoleViewer {
				t.Fatalf("accepted http user %+v", u)
			}
		}
	})
}

// lineCount counts lines as YAML does: CR LF, CR and LF each end one.
func lineCount(b []byte) int {
	return bytes.Count(b, []byte("\n")) + bytes.Count(b, []byte("\r")) - bytes.Count(b, []byte("\r\n")) + 1
}
