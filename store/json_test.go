package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// nasty are string pieces encoding/json treats specially.
var nasty = []string{
	"", "a", "1002", "Alice Reception", "sip:1001@contoso.com", `"`, `\`, "<", ">", "&",
	"\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "é", "日本", "\u2028", "\u2029",
	"\xff", "\xe2\x80", "😀", "\U0010ffff", "\ufffd", "a\"b\\c",
}

func randString(r *rand.Rand) string {
	var b []byte
	for range r.IntN(4) {
		b = append(b, nasty[r.IntN(len(nasty))]...)
	}
	return string(b)
}

func randTime(r *rand.Rand) time.Time {
	if r.IntN(4) == 0 {
		return time.Time{}
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("x", -(9*3600 + 30*60)), time.FixedZone("y", 14*3600)}
	t := time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	if r.IntN(3) == 0 {
		t = t.Truncate(time.Second)
	}
	return t
}

func randParty(r *rand.Rand) Party {
	if r.IntN(3) == 0 {
		return Party{}
	}
	return Party{User: randString(r), Display: randString(r), URI: randString(r)}
}

func randEvent(r *rand.Rand) Event {
	return Event{
		Seq: uint64(r.IntN(3)) * r.Uint64(), Type: EventType(randString(r)), At: randTime(r),
		Node: randString(r), CallID: randString(r), Policy: randString(r), Code: r.IntN(3) * (r.IntN(2000) - 1000),
		Parker: randParty(r), ParkedParty: randParty(r), Retriever: randParty(r), Reason: randString(r),
		From: randParty(r), To: randParty(r),
	}
}

func randRecord(r *rand.Rand) CallRecord {
	c := CallRecord{
		CallID: randString(r), From: randString(r), To: randString(r), Started: randTime(r),
		Answered: randTime(r), Ended: randTime(r), EndReason: randString(r), Node: randString(r),
	}
	if n := r.IntN(4); n > 0 {
		c.Legs = make([]LegRecord, n-1) // an empty list as well as none
		for i := range c.Legs {
			c.Legs[i] = LegRecord{CallID: randString(r), Role: randString(r), Party: randParty(r),
				Started: randTime(r), Answered: randTime(r), Ended: randTime(r)}
		}
	}
	if r.IntN(2) == 0 {
		c.Park = &ParkRecord{Code: r.IntN(100), Policy: randString(r), Parker: randParty(r), ParkedAt: randTime(r),
			RetrievedAt: randTime(r), Retriever: randParty(r), Ringbacks: r.IntN(3)}
	}
	return c
}

// TestAppendJSONAsMarshal holds the hand encoders to encoding/json's bytes.
func TestAppendJSONAsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	prefix := []byte("prefix:")
	for i := range 20000 {
		var v interface {
			AppendJSON([]byte) ([]byte, error)
		}
		if i%2 == 0 {
			e := randEvent(r)
			v = &e
		} else {
			c := randRecord(r)
			v = &c
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", v, err)
		}
		got, err := v.AppendJSON(bytes.Clone(prefix))
		if err != nil {
			t.Fatalf("AppendJSON(%+v): %v", v, err)
		}
		if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("AppendJSON(%+v)\n got %s\nwant %s%s", v, got, prefix, want)
		}
	}
}

func TestAppendJSONRefusesWhatMarshalRefuses(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("z", 25*3600)),
	} {
		e := Event{Type: EventParked, At: at}
		if _, err := json.Marshal(&e); err == nil {
			t.Fatalf("json.Marshal took %v", at)
		}
		if b, err := e.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON took %v: %s", at, b)
		}
		c := CallRecord{Ended: time.Now(), Legs: []LegRecord{{Started: at}}}
		if b, err := c.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON took a leg started %v: %s", at, b)
		}
		c = CallRecord{Park: &ParkRecord{ParkedAt: at}}
		if b, err := c.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON took a park at %v: %s", at, b)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range nasty {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	at := time.Date(2026, 11, 25, 9, 0, 0, 120000000, time.UTC)
	alice := Party{User: "1001", Display: "Alice Reception", URI: "sip:1001@contoso.com"}
	bob := Party{User: "1002", Display: "Bob Sales", URI: "sip:1002@contoso.com"}
	rec := CallRecord{CallID: "a84b4c76e66710", From: "sip:1001@contoso.com", To: "sip:1002@contoso.com",
		Started: at, Answered: at, Ended: at, EndReason: "caller_hangup",
		Legs: []LegRecord{{CallID: "a84b4c76e66710", Role: "caller", Party: alice, Started: at, Answered: at, Ended: at},
			{CallID: "b-a84b4c76e66710", Role: "callee", Party: bob, Started: at, Answered: at, Ended: at}}, Node: "pbx1"}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rec.AppendJSON(make([]byte, 0, 512)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
