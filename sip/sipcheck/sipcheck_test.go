package sipcheck

import (
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const baseInvite = "INVITE sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n" +
	"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnashds8\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Bob <sip:bob@example.com>\r\n" +
	"From: \"Alice A.\" <sip:alice@example.com>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:alice@192.0.2.1:5060;transport=udp>\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 5\r\n" +
	"\r\n" +
	"v=0\r\n"

const baseRegister = "REGISTER sip:example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: <sip:alice@example.com>\r\n" +
	"From: <sip:alice@example.com>;tag=456248\r\n" +
	"Call-ID: 843817637684230@998sdasdh09\r\n" +
	"CSeq: 1826 REGISTER\r\n" +
	"Contact: <sip:alice@192.0.2.1>\r\n" +
	"Expires: 7200\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

func TestRequest(t *testing.T) {
	tests := []struct {
		name   string
		base   string
		edits  []string // old, new pairs applied to base in order
		code   int      // 0: accepted
		reason string
	}{
		{"valid invite", baseInvite, nil, 0, ""},
		{"valid register", baseRegister, nil, 0, ""},
		{"sips and tel", baseInvite, []string{"INVITE sip:bob@", "INVITE sips:bob@", "sip:alice@example.com>", "tel:+1-201-555-0123>"}, 0, ""},
		{"tel request uri", baseInvite, []string{"sip:bob@example.com SIP", "tel:+12015550123;phone-context=example.com SIP"}, 0, ""},
		{"ipv6 everywhere", baseInvite, []string{"192.0.2.1:5060;branch", "[2001:db8::1]:5060;branch", "bob@example.com SIP", "bob@[2001:db8::2] SIP"}, 0, ""},
		{"lower-case version", baseInvite, []string{" SIP/2.0\r\nVia", " sip/2.0\r\nVia"}, 0, ""},
		{"no max-forwards", baseInvite, []string{"Max-Forwards: 70\r\n", ""}, 0, ""},
		{"no content-length on udp", baseInvite, []string{"Content-Length: 5\r\n", ""}, 0, ""},
		{"non-magic branch", baseInvite, []string{"branch=z9hG4bK776asdhds", "branch=776asdhds"}, 0, ""},
		{"no branch", baseInvite, []string{";branch=z9hG4bK776asdhds", ""}, 0, ""},
		{"escaped user", baseInvite, []string{"sip:bob@", "sip:b%6Fb@"}, 0, ""},
		{"quoted display name with escapes", baseInvite, []string{`"Alice A."`, `"Alice \"A\" \\ B"`}, 0, ""},
		{"utf-8 display name", baseInvite, []string{`"Alice A."`, `"Алиса"`}, 0, ""},
		{"good date", baseInvite, []string{"Max-Forwards", "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nMax-Forwards"}, 0, ""},
		{"register wildcard", baseRegister, []string{"<sip:alice@192.0.2.1>", "*", "Expires: 7200", "Expires: 0"}, 0, ""},
		{"register contact with escaped header", baseRegister, []string{"@192.0.2.1>", "@192.0.2.1?Route=%3Csip:p.example.com%3E>"}, 0, ""},
		{"two contacts in one line", baseRegister, []string{"<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.1>, \"A, B\" <sip:alice@192.0.2.2>;q=0.5"}, 0, ""},

		{"version 2.1", baseInvite, []string{" SIP/2.0\r\nVia", " SIP/2.1\r\nVia"}, 505, "Version Not Supported"},
		{"version garbage", baseInvite, []string{" SIP/2.0\r\nVia", " SIP/two\r\nVia"}, 400, "Bad SIP Version"},
		{"unknown scheme", baseInvite, []string{"INVITE sip:bob@example.com", "INVITE urn:service:sos"}, 416, "Unsupported URI Scheme"},
		{"bad escape in user", baseInvite, []string{"sip:bob@example.com SIP", "sip:b%6@example.com SIP"}, 400, "Bad Request-URI"},
		{"bad escape in param", baseInvite, []string{"sip:bob@example.com SIP", "sip:bob@example.com;x=%zz SIP"}, 400, "Bad Request-URI"},
		{"angle bracket in user", baseInvite, []string{"sip:bob@example.com SIP", "sip:b<b@example.com SIP"}, 400, "Bad Request-URI"},
		{"quote in host", baseInvite, []string{"sip:bob@example.com SIP", "sip:bob@exa\"mple.com SIP"}, 400, "Bad Request-URI"},
		{"empty host", baseInvite, []string{"sip:bob@example.com SIP", "sip:bob@ SIP"}, 400, "Bad Request-URI"},
		{"bad ipv6", baseInvite, []string{"sip:bob@example.com SIP", "sip:bob@[2001:db8::zz] SIP"}, 400, "Bad Request-URI"},
		{"port out of range", baseInvite, []string{"sip:bob@example.com SIP", "sip:bob@example.com:70000 SIP"}, 400, "Bad Request-URI"},
		{"headers in request uri", baseInvite, []string{"sip:bob@example.com SIP", "sip:bob@example.com?Subject=hi SIP"}, 400, "Bad Request-URI"},
		{"slashes in request uri", baseInvite, []string{"sip:bob@example.com SIP", "sip://bob@example.com SIP"}, 400, "Bad Request-URI"},
		{"bad tel", baseInvite, []string{"sip:bob@example.com SIP", "tel:+1<2 SIP"}, 400, "Bad Request-URI"},
		{"empty tel", baseInvite, []string{"sip:bob@example.com SIP", "tel: SIP"}, 400, "Bad Request-URI"},

		{"no via", baseInvite, []string{"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\nVia: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnashds8\r\n", ""}, 400, "Missing Via"},
		{"via version", baseInvite, []string{"Via: SIP/2.0/UDP 192.0.2.1", "Via: SIP/3.0/UDP 192.0.2.1"}, 400, "Bad Via Protocol"},
		{"via bad host", baseInvite, []string{"Via: SIP/2.0/UDP 192.0.2.1", "Via: SIP/2.0/UDP 192.0.2.1<"}, 400, "Malformed Via"},
		{"via ipv6", baseInvite, []string{"Via: SIP/2.0/UDP 192.0.2.1:5060", "Via: SIP/2.0/UDP [2001:db8::9]:5060"}, 0, ""},
		{"via bad ipv6", baseInvite, []string{"Via: SIP/2.0/UDP 192.0.2.1:5060", "Via: SIP/2.0/UDP [2001:db8::z]:5060"}, 400, "Malformed Via"},
		{"via empty branch", baseInvite, []string{"branch=z9hG4bK776asdhds", "branch="}, 400, "Bad Via Branch"},
		{"via branch and BRANCH", baseInvite, []string{"branch=z9hG4bK776asdhds", "branch=z9hG4bK1;BRANCH=z9hG4bK2"}, 400, "Bad Via Branch"},

		{"no from", baseInvite, []string{"From: \"Alice A.\" <sip:alice@example.com>;tag=1928301774\r\n", ""}, 400, "Missing From"},
		{"two froms", baseInvite, []string{"Call-ID", "From: <sip:x@example.com>;tag=1\r\nCall-ID"}, 400, "Duplicate From"},
		{"no from tag", baseInvite, []string{";tag=1928301774", ""}, 400, "Missing or Bad From Tag"},
		{"empty from tag", baseInvite, []string{";tag=1928301774", ";tag="}, 400, "Missing or Bad From Tag"},
		{"quoted from tag", baseInvite, []string{";tag=1928301774", `;tag="19"`}, 400, "Missing or Bad From Tag"},
		{"from tag and TAG", baseInvite, []string{";tag=1928301774", ";tag=1;TAG=2"}, 400, "Missing or Bad From Tag"},
		{"display name ends in backslash", baseInvite, []string{`"Alice A." <sip:alice`, `Alice\ <sip:alice`}, 400, "Malformed From"},
		{"bad escape in from", baseInvite, []string{"<sip:alice@example.com>", "<sip:al%ice@example.com>"}, 400, "Malformed From"},
		{"headers in from uri", baseInvite, []string{"<sip:alice@example.com>", "<sip:alice@example.com?Route=x>"}, 400, "Malformed From"},
		{"no to", baseInvite, []string{"To: Bob <sip:bob@example.com>\r\n", ""}, 400, "Missing To"},
		{"two tos", baseInvite, []string{"Call-ID", "To: <sip:x@example.com>\r\nCall-ID"}, 400, "Duplicate To"},
		{"to tag not a token", baseInvite, []string{"Bob <sip:bob@example.com>", "Bob <sip:bob@example.com>;tag=a\"b"}, 400, "Bad To Tag"},
		{"unquoted display name with comma", baseInvite, []string{"To: Bob <", "To: Bob, Jr <"}, 400, "Malformed To"},
		{"spaces inside angle brackets", baseInvite, []string{"To: Bob <sip:bob@example.com>", "To: Bob <sip:bob@example.com >"}, 400, "Malformed To"},
		{"text after angle bracket", baseInvite, []string{"To: Bob <sip:bob@example.com>", "To: Bob <sip:bob@example.com> x"}, 400, "Malformed To"},

		{"no call-id", baseInvite, []string{"Call-ID: a84b4c76e66710@pc33.example.com\r\n", ""}, 400, "Missing Call-ID"},
		{"two call-ids", baseInvite, []string{"CSeq", "i: other@host\r\nCSeq"}, 400, "Duplicate Call-ID"},
		{"call-id with space", baseInvite, []string{"a84b4c76e66710@pc33", "a84b4c76 e66710@pc33"}, 400, "Malformed Call-ID"},
		{"call-id two ats", baseInvite, []string{"a84b4c76e66710@pc33", "a84b@4c76e66710@pc33"}, 400, "Malformed Call-ID"},
		{"call-id empty host", baseInvite, []string{"a84b4c76e66710@pc33.example.com", "a84b4c76e66710@"}, 400, "Malformed Call-ID"},
		{"no cseq", baseInvite, []string{"CSeq: 314159 INVITE\r\n", ""}, 400, "Missing CSeq"},
		{"two cseqs", baseInvite, []string{"Contact", "CSeq: 2 INVITE\r\nContact"}, 400, "Duplicate CSeq"},
		{"cseq method mismatch", baseInvite, []string{"314159 INVITE", "314159 BYE"}, 400, "CSeq Method Mismatch"},

		// RFC 3261 §18.3: octets past Content-Length in a datagram are dropped.
		{"content-length shorter than datagram", baseInvite, []string{"Content-Length: 5", "Content-Length: 4"}, 0, ""},
		{"two content-lengths", baseInvite, []string{"Content-Length: 5", "Content-Length: 5\r\nl: 5"}, 400, "Duplicate Content-Length"},
		{"body without type", baseInvite, []string{"Content-Type: application/sdp\r\n", ""}, 400, "Missing Content-Type"},
		{"content-type without subtype", baseInvite, []string{"application/sdp", "application"}, 400, "Bad Content-Type"},
		{"two content-types", baseInvite, []string{"Content-Type: application/sdp", "Content-Type: application/sdp\r\nc: text/plain"}, 400, "Duplicate Content-Type"},

		{"wildcard outside register", baseInvite, []string{"<sip:alice@192.0.2.1:5060;transport=udp>", "*"}, 400, "Bad Contact Wildcard"},
		{"wildcard with other contacts", baseRegister, []string{"<sip:alice@192.0.2.1>", "*\r\nContact: <sip:a@b>"}, 400, "Bad Contact Wildcard"},
		{"escaped header in dialog contact", baseInvite, []string{"transport=udp>", "transport=udp?Route=%3Csip:x%3E>"}, 400, "Malformed Contact"},
		{"unbracketed contact with header", baseRegister, []string{"<sip:alice@192.0.2.1>", "sip:alice@192.0.2.1?Route=%3Csip:x%3E"}, 400, "Malformed Contact"},
		{"second contact malformed", baseRegister, []string{"<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.1>, Bad\\Name <sip:a@b>"}, 400, "Malformed Contact"},

		{"date not gmt", baseInvite, []string{"Max-Forwards", "Date: Sat, 13 Nov 2010 23:29:00 EST\r\nMax-Forwards"}, 400, "Bad Date"},
		{"date garbage", baseInvite, []string{"Max-Forwards", "Date: yesterday GMT\r\nMax-Forwards"}, 400, "Bad Date"},
		{"expires not numeric", baseRegister, []string{"Expires: 7200", "Expires: soon"}, 400, "Bad Expires"},
		{"two expires", baseRegister, []string{"Expires: 7200", "Expires: 7200\r\nExpires: 60"}, 400, "Duplicate Expires"},
		{"two max-forwards", baseInvite, []string{"Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"}, 400, "Duplicate Max-Forwards"},

		{"max-forwards zero", baseInvite, []string{"Max-Forwards: 70", "Max-Forwards: 0"}, 483, "Too Many Hops"},
		{"other errors before max-forwards", baseInvite, []string{"Max-Forwards: 70", "Max-Forwards: 0", "314159 INVITE", "314159 BYE"}, 400, "CSeq Method Mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.base
			for i := 0; i+1 < len(tc.edits); i += 2 {
				if !strings.Contains(text, tc.edits[i]) {
					t.Fatalf("edit %q does not apply", tc.edits[i])
				}
				text = strings.Replace(text, tc.edits[i], tc.edits[i+1], 1)
			}
			msg, err := NewParser().ParseSIP([]byte(text))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = Request(msg.(*sip.Request))
			if got := StatusCode(err); got != tc.code {
				t.Fatalf("Request = %v (%d), want %d %s", err, got, tc.code, tc.reason)
			}
			if err != nil && err.Error() != tc.reason {
				t.Errorf("reason %q, want %q", err.Error(), tc.reason)
			}
		})
	}
}

func TestSentinels(t *testing.T) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "example.com"})
	req.SipVersion = "SIP/3.0"
	if err := Request(req); !errors.Is(err, ErrVersionNotSupported) {
		t.Errorf("got %v, want ErrVersionNotSupported", err)
	}
	if err := Request(nil); StatusCode(err) != 400 {
		t.Errorf("nil request: %v", err)
	}
	if StatusCode(nil) != 0 || StatusCode(errors.New("x")) != 400 || StatusCode(ErrTooManyHops) != 483 {
		t.Error("StatusCode mapping")
	}
}

// TestRequestBuilt checks a request assembled in code, as a test phone or
// a header-less sipgo request would produce it.
func TestRequestBuilt(t *testing.T) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "bob", Host: "example.com"})
	if err := Request(req); err == nil || err.Error() != "Missing Via" {
		t.Fatalf("empty request: %v", err)
	}
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "192.0.2.1", Port: 5060, Params: sip.NewParams()}
	via.Params.Add("branch", "z9hG4bK1")
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.com"}, Params: sip.NewParams()}
	from.Params.Add("tag", "x1")
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.com"}}
	callID := sip.CallIDHeader("abc@host")
	req.AppendHeader(via)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	if err := Request(req); err != nil {
		t.Fatalf("built request: %v", err)
	}
	req.ReplaceHeader(&sip.CSeqHeader{SeqNo: 1 << 31, MethodName: sip.OPTIONS})
	if err := Request(req); err == nil || err.Error() != "Bad CSeq" {
		t.Fatalf("CSeq 2^31: %v", err)
	}
	req.ReplaceHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.SetBody([]byte("hi"))
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	if err := Request(req); err == nil || err.Error() != "Bad Content-Type" {
		t.Fatalf("untyped Content-Type: %v", err)
	}
	ct := sip.ContentTypeHeader("text/plain")
	req.ReplaceHeader(&ct)
	if err := Request(req); err != nil {
		t.Fatalf("with body: %v", err)
	}
	cl := sip.ContentLengthHeader(10)
	req.ReplaceHeader(&cl)
	if err := Request(req); err == nil || err.Error() != "Bad Content-Length" {
		t.Fatalf("Content-Length 10 for 2 octets: %v", err)
	}
	cl = 2
	req.AppendHeader(sip.NewHeader("Contact", "<sip:alice@192.0.2.1>"))
	if err := Request(req); err == nil || err.Error() != "Malformed Contact" {
		t.Fatalf("untyped Contact: %v", err)
	}
}

func TestHeadersParser(t *testing.T) {
	canonical := map[string]string{"to": "To", "t": "To", "from": "From", "f": "From", "contact": "Contact", "m": "Contact"}
	tests := []struct {
		name, header, value string
		typed               bool
	}{
		{"token display name", "from", "Alice Smith <sip:a@b>;tag=1", true},
		{"quoted display name", "from", `"Smith, Alice" <sip:a@b>;tag=1`, true},
		{"quoted with brackets inside", "to", `"<b>" <sip:a@b>`, true},
		{"no display name", "t", "<sip:a@b>", true},
		{"addr-spec with params", "f", "sip:a@b ; tag = 1", true},
		{"addr-spec other scheme", "to", "isbn:2983792873", true},
		{"unquoted comma", "from", "Smith, Alice <sip:a@b>;tag=1", false},
		{"two quoted strings", "from", `"A" "B" <sip:a@b>;tag=1`, false},
		{"space before close bracket", "to", "<sip:a@b >", false},
		{"text after bracket", "to", "<sip:a@b> junk", false},
		{"addr-spec with query", "contact", "sip:a@b?Route=x", false},
		{"addr-spec with query compact", "m", "sip:a@b?Route=x", false},
		{"bracketed query", "contact", "<sip:a@b?Route=x>", true},
		{"wildcard", "contact", "*", true},
	}
	p := HeadersParser()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs, err := p.ParseHeader(nil, []byte(tc.header+": "+tc.value))
			if err != nil || len(hs) != 1 {
				t.Fatalf("ParseHeader = %v, %v", hs, err)
			}
			typed := true
			switch hs[0].(type) {
			case *sip.ToHeader, *sip.FromHeader, *sip.ContactHeader:
			default:
				typed = false
			}
			if typed != tc.typed {
				t.Fatalf("typed = %v (%T), want %v", typed, hs[0], tc.typed)
			}
			if !typed && (hs[0].Value() != tc.value || hs[0].Name() != canonical[tc.header]) {
				t.Errorf("demoted header %s: %q", hs[0].Name(), hs[0].Value())
			}
		})
	}

	t.Run("contact list", func(t *testing.T) {
		hs, err := p.ParseHeader(nil, []byte(`Contact: <sip:a@b>, "x, y" <sip:c@d>;q=0.1,sip:e@f?x=1`))
		if err != nil || len(hs) != 3 {
			t.Fatalf("ParseHeader = %v, %v", hs, err)
		}
		if _, ok := hs[1].(*sip.ContactHeader); !ok {
			t.Errorf("second contact demoted: %T", hs[1])
		}
		if _, ok := hs[2].(*sip.ContactHeader); ok {
			t.Errorf("third contact kept typed")
		}
	})
	t.Run("sipgo errors kept", func(t *testing.T) {
		if _, err := p.ParseHeader(nil, []byte(`To: "unterminated <sip:a@b>`)); err == nil {
			t.Error("want sipgo's parse error")
		}
	})
	t.Run("default map untouched", func(t *testing.T) {
		hs, err := sip.HeadersParser(sip.DefaultHeadersParser()).ParseHeader(nil, []byte("From: Smith, Alice <sip:a@b>;tag=1"))
		if err != nil || len(hs) != 1 {
			t.Fatal(err)
		}
		if _, ok := hs[0].(*sip.FromHeader); !ok {
			t.Errorf("default parser changed: %T", hs[0])
		}
	})
}

func TestSyntaxHelpers(t *testing.T) {
	quoted := []struct {
		s  string
		ok bool
	}{
		{"", true},
		{"Alice", true},
		{`a \\ b \" c`, true},
		{"tab\there", true},
		{"\\\x00\\\x7f", true},
		{"Алиса", true},
		{`a " b`, false},
		{`trailing \`, false},
		{"bell\x07", false},
		{"\\\r", false},
		{"\\é", false},
		{"\xff", false},
	}
	for _, tc := range quoted {
		if got := validQuotedContent(tc.s); got != tc.ok {
			t.Errorf("validQuotedContent(%q) = %v", tc.s, got)
		}
	}
}
