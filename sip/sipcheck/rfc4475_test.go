package sipcheck

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const corpusDir = "../../testdata/rfc4475"

// Outcomes of parsing a message and running Request on it.
const (
	parseErr = "parse error"
	response = "response" // not a request: nothing for Request to do
	accepted = "accepted"
)

func rejected(code int) string { return "rejected " + strconv.Itoa(code) }

// outcome parses data with p and classifies the result.
func outcome(p *sip.Parser, data []byte) (string, error) {
	msg, err := p.ParseSIP(data)
	if err != nil {
		return parseErr, err
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return response, nil
	}
	if err := Request(req); err != nil {
		return rejected(StatusCode(err)), err
	}
	return accepted, nil
}

// rfc4475 lists every message of the RFC 4475 archive with its fate under
// sipgo's default parser and under NewParser. Section 3.1.1 messages must
// be accepted and section 3.1.2 ones must never be accepted.
var rfc4475 = []struct {
	file, section string
	plain, strict string
}{
	{"wsinv.dat", "3.1.1.1", accepted, accepted},
	{"intmeth.dat", "3.1.1.2", accepted, accepted},
	{"esc01.dat", "3.1.1.3", accepted, accepted},
	{"escnull.dat", "3.1.1.4", accepted, accepted},
	{"esc02.dat", "3.1.1.5", accepted, accepted},
	{"lwsdisp.dat", "3.1.1.6", accepted, accepted},
	{"longreq.dat", "3.1.1.7", accepted, accepted},
	{"dblreq.dat", "3.1.1.8", accepted, accepted},
	{"semiuri.dat", "3.1.1.9", accepted, accepted},
	{"transports.dat", "3.1.1.10", accepted, accepted},
	{"mpart01.dat", "3.1.1.11", accepted, accepted},
	{"unreason.dat", "3.1.1.12", response, response},
	{"noreason.dat", "3.1.1.13", response, response},

	{"badinv01.dat", "3.1.2.1", parseErr, parseErr},
	{"clerr.dat", "3.1.2.2", parseErr, parseErr},
	{"ncl.dat", "3.1.2.3", parseErr, parseErr},
	{"scalar02.dat", "3.1.2.4", parseErr, parseErr},
	{"scalarlg.dat", "3.1.2.5", parseErr, parseErr},
	{"quotbal.dat", "3.1.2.6", parseErr, parseErr},
	{"ltgtruri.dat", "3.1.2.7", parseErr, parseErr},
	{"lwsruri.dat", "3.1.2.8", parseErr, parseErr},
	{"lwsstart.dat", "3.1.2.9", parseErr, parseErr},
	{"trws.dat", "3.1.2.10", parseErr, parseErr},
	{"escruri.dat", "3.1.2.11", rejected(400), rejected(400)},
	{"baddate.dat", "3.1.2.12", rejected(400), rejected(400)},
	// Only the raw text tells this unbracketed Contact from regescrt's.
	{"regbadct.dat", "3.1.2.13", accepted, rejected(400)},
	{"badaspec.dat", "3.1.2.14", parseErr, parseErr},
	// The archive copy lacks the final CRLF; see baddn+CRLF below.
	{"baddn.dat", "3.1.2.15", parseErr, parseErr},
	{"badvers.dat", "3.1.2.16", rejected(505), rejected(505)},
	{"mismatch01.dat", "3.1.2.17", rejected(400), rejected(400)},
	{"mismatch02.dat", "3.1.2.18", rejected(400), rejected(400)},
	{"bigcode.dat", "3.1.2.19", parseErr, parseErr},

	{"badbranch.dat", "3.2.1", accepted, accepted},

	{"insuf.dat", "3.3.1", rejected(400), rejected(400)},
	{"unkscm.dat", "3.3.2", rejected(416), rejected(416)},
	// sipgo refuses the "soap.beep" scheme, so no 416 can be sent.
	{"novelsc.dat", "3.3.3", parseErr, parseErr},
	{"unksm2.dat", "3.3.4", accepted, accepted},
	{"bext01.dat", "3.3.5", accepted, accepted},
	{"invut.dat", "3.3.6", accepted, accepted},
	{"regaut01.dat", "3.3.7", accepted, accepted},
	{"multi01.dat", "3.3.8", rejected(400), rejected(400)},
	{"mcl01.dat", "3.3.9", rejected(400), rejected(400)},
	{"bcast.dat", "3.3.10", response, response},
	{"zeromf.dat", "3.3.11", rejected(483), rejected(483)},
	{"cparam01.dat", "3.3.12", accepted, accepted},
	{"cparam02.dat", "3.3.13", accepted, accepted},
	{"regescrt.dat", "3.3.14", accepted, accepted},
	{"sdp01.dat", "3.3.15", accepted, accepted},

	// RFC 2543 request: no From tag, no branch.
	{"inv2543.dat", "3.4.1", rejected(400), rejected(400)},

	{"test.dat", "-", parseErr, parseErr},
}

func TestRFC4475(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	listed := map[string]bool{}
	for _, tc := range rfc4475 {
		listed[tc.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no expected outcome", filepath.Base(f))
		}
	}

	for _, tc := range rfc4475 {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.section, "3.1.1") && tc.strict != accepted && tc.strict != response {
				t.Errorf("valid message expected to fail")
			}
			if strings.HasPrefix(tc.section, "3.1.2") && tc.strict == accepted {
				t.Errorf("invalid message expected to pass")
			}
			if got, err := outcome(sip.NewParser(), data); got != tc.plain {
				t.Errorf("default parser: %s (%v), want %s", got, err, tc.plain)
			}
			if got, err := outcome(NewParser(), data); got != tc.strict {
				t.Errorf("strict parser: %s (%v), want %s", got, err, tc.strict)
			}
		})
	}
}

// TestBadDisplayNameFramed runs RFC 4475 §3.1.2.15 with the blank line the
// archive copy lacks, so that the display name itself is what is judged.
func TestBadDisplayNameFramed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpusDir, "baddn.dat"))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "\r\n"...)
	if got, err := outcome(sip.NewParser(), data); got != accepted {
		t.Errorf("default parser: %s (%v): sipgo now rejects it; update the table", got, err)
	}
	got, err := outcome(NewParser(), data)
	if got != rejected(400) || err.Error() != "Malformed From" {
		t.Errorf("strict parser: %s (%v), want rejected 400 Malformed From", got, err)
	}
}

// TestParamsWithoutLWS: the white space RFC 3261 allows around ";" and "="
// is not part of parameter names and values (RFC 4475 §3.1.1.1), so the
// transaction layer finds the From tag of an RFC 2543-style request.
func TestParamsWithoutLWS(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpusDir, "wsinv.dat"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := NewParser().ParseSIP(data)
	if err != nil {
		t.Fatal(err)
	}
	if tag, _ := msg.From().Params.Get("tag"); tag != "98asjd8" {
		t.Errorf("From tag %q, want 98asjd8 (params %#v)", tag, msg.From().Params)
	}
	if tag, _ := msg.To().Params.Get("tag"); tag != "1918181833n" || msg.To().Address.Host != "chair-dnrc.example.com" {
		t.Errorf("To %q: tag %q, host %q", msg.To().Value(), tag, msg.To().Address.Host)
	}
	c := msg.(*sip.Request).Contact()
	if c == nil {
		t.Fatal("no Contact")
	}
	if v, _ := c.Params.Get("newparam"); v != "newvalue" || !c.Params.Has("secondparam") {
		t.Errorf("Contact params %#v", c.Params)
	}
	if q, _ := c.Params.Get("q"); q != "0.33" {
		t.Errorf("Contact q %q, want 0.33", q)
	}
	if _, err := sip.ServerTxKeyMake(msg); err != nil {
		t.Errorf("no transaction key: %v", err)
	}
}
