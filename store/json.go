package store

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// The log's two records are encoded by hand, byte for byte as
// encoding/json marshals them (the tests hold the two together): a busy
// switch writes three events and a call record a call, and reflection
// spent more on them than the store spent storing them.

// AppendJSON appends e's JSON encoding to b.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	w := jsonObject{b: b}
	if e.Seq != 0 {
		w.key("seq")
		w.b = strconv.AppendUint(w.b, e.Seq, 10)
	}
	w.str("type", string(e.Type))
	w.time("at", e.At)
	w.strOmit("node", e.Node)
	w.strOmit("call_id", e.CallID)
	w.strOmit("policy", e.Policy)
	if e.Code != 0 {
		w.key("code")
		w.b = strconv.AppendInt(w.b, int64(e.Code), 10)
	}
	w.partyOmit("parker", e.Parker)
	w.partyOmit("parked_party", e.ParkedParty)
	w.partyOmit("retriever", e.Retriever)
	w.strOmit("reason", e.Reason)
	w.partyOmit("from", e.From)
	w.partyOmit("to", e.To)
	return w.end()
}

// AppendJSON appends r's JSON encoding to b.
func (r *CallRecord) AppendJSON(b []byte) ([]byte, error) {
	w := jsonObject{b: b}
	w.str("call_id", r.CallID)
	w.str("from", r.From)
	w.str("to", r.To)
	w.time("started", r.Started)
	w.timeOmit("answered", r.Answered)
	w.time("ended", r.Ended)
	w.str("end_reason", r.EndReason)
	w.key("legs")
	if r.Legs == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.b = append(w.b, '[')
		for i := range r.Legs {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = r.Legs[i].appendJSON(w.b, &w.err)
		}
		w.b = append(w.b, ']')
	}
	if p := r.Park; p != nil {
		w.key("park")
		l := jsonObject{b: w.b}
		l.num("code", p.Code)
		l.str("policy", p.Policy)
		l.party("parker", p.Parker)
		l.time("parked_at", p.ParkedAt)
		l.timeOmit("retrieved_at", p.RetrievedAt)
		l.partyOmit("retriever", p.Retriever)
		l.num("ringbacks", p.Ringbacks)
		w.b, w.err = l.close(w.err)
	}
	w.strOmit("node", r.Node)
	return w.end()
}

func (l *LegRecord) appendJSON(b []byte, err *error) []byte {
	w := jsonObject{b: b}
	w.str("call_id", l.CallID)
	w.str("role", l.Role)
	w.party("party", l.Party)
	w.time("started", l.Started)
	w.timeOmit("answered", l.Answered)
	w.time("ended", l.Ended)
	b, *err = w.close(*err)
	return b
}

// jsonObject writes one JSON object's members in order.
type jsonObject struct {
	b    []byte
	open bool
	err  error // the first time that has no JSON form
}

func (w *jsonObject) key(k string) {
	if w.open {
		w.b = append(w.b, ',')
	} else {
		w.b = append(w.b, '{')
		w.open = true
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

// close ends the object and returns its bytes and the first error of
// outer's and its own.
func (w *jsonObject) close(outer error) ([]byte, error) {
	if !w.open {
		w.b = append(w.b, '{')
	}
	w.b = append(w.b, '}')
	if outer != nil {
		return w.b, outer
	}
	return w.b, w.err
}

func (w *jsonObject) end() ([]byte, error) {
	b, err := w.close(nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (w *jsonObject) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonObject) strOmit(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *jsonObject) num(k string, v int) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, int64(v), 10)
}

func (w *jsonObject) time(k string, t time.Time) {
	w.key(k)
	out, err := t.AppendText(append(w.b, '"'))
	if err != nil {
		// As time.Time.MarshalJSON refuses it (a year beyond 9999, say).
		if w.err == nil {
			w.err = fmt.Errorf("json: %s: %w", k, err)
		}
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(out, '"')
}

func (w *jsonObject) timeOmit(k string, t time.Time) {
	if !t.IsZero() {
		w.time(k, t)
	}
}

func (w *jsonObject) party(k string, p Party) {
	w.key(k)
	o := jsonObject{b: w.b}
	o.str("user", p.User)
	o.strOmit("display_name", p.Display)
	o.strOmit("uri", p.URI)
	w.b, _ = o.close(nil)
}

func (w *jsonObject) partyOmit(k string, p Party) {
	if p != (Party{}) {
		w.party(k, p)
	}
}

// appendJSONString appends s quoted as encoding/json quotes it, HTML
// characters and the JavaScript line separators escaped and invalid UTF-8
// replaced.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
