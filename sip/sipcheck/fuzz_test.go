package sipcheck

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzRequest feeds arbitrary datagrams through both parsers and Request:
// nothing may panic, and every refusal maps to a known status.
func FuzzRequest(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.dat"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(baseInvite))
	f.Add([]byte(baseRegister))

	parsers := []*sip.Parser{sip.NewParser(), NewParser()}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range parsers {
			msg, err := p.ParseSIP(data)
			if err != nil {
				continue
			}
			req, ok := msg.(*sip.Request)
			if !ok {
				continue
			}
			err = Request(req)
			switch StatusCode(err) {
			case 0, 400, 416, 483, 505:
			default:
				t.Fatalf("unexpected status for %v", err)
			}
		}
	})
}
