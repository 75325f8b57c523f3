package web

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/park"
)

// clock is a time that tests move.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var epoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestSessionExpiry(t *testing.T) {
	tests := []struct {
		name  string
		steps []time.Duration // wait, then use the session, for each
		alive bool
	}{
		{"fresh", nil, true},
		{"used within the idle time", []time.Duration{11 * time.Hour, 11 * time.Hour, 11 * time.Hour}, true},
		{"idle too long", []time.Duration{sessionIdle + time.Second}, false},
		{"in use past its lifetime", repeat(6*time.Hour, 29), false},
		{"in use until just before its lifetime", repeat(6*time.Hour, 27), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: epoch}
			st := newSessions(c.now, 10)
			id, s := st.create("ops", "stamp")
			for _, d := range tt.steps {
				c.add(d)
				st.get(id)
			}
			got := st.get(id)
			if (got != nil) != tt.alive {
				t.Fatalf("session alive = %v, want %v", got != nil, tt.alive)
			}
			if !tt.alive {
				select {
				case <-s.done:
				default:
					t.Error("an expired session's done channel is open: its event streams would go on")
				}
				if st.len() != 0 {
					t.Errorf("%d sessions held after expiry", st.len())
				}
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestSessionBound(t *testing.T) {
	c := &clock{t: epoch}
	st := newSessions(c.now, 3)
	ids := make([]string, 3)
	for i := range ids {
		ids[i], _ = st.create("u", "")
		c.add(2 * time.Minute)
	}
	st.get(ids[0]) // seen last: the second is now the least recent
	c.add(time.Minute)
	id4, _ := st.create("u", "")
	if st.len() != 3 {
		t.Fatalf("%d sessions, want the bound 3", st.len())
	}
	for i, want := range map[string]bool{ids[0]: true, ids[1]: false, ids[2]: true, id4: true} {
		if got := st.get(i) != nil; got != want {
			t.Errorf("session alive = %v, want %v (the least recently seen goes)", got, want)
		}
	}
	// Expired sessions go before live ones.
	c.add(sessionIdle + time.Second)
	live, _ := st.create("u", "")
	st.create("u", "")
	if st.get(live) == nil || st.len() != 2 {
		t.Errorf("after expiry: %d sessions, live one kept = %v", st.len(), st.get(live) != nil)
	}
}

func TestSessionIDs(t *testing.T) {
	st := newSessions(time.Now, 100)
	seen := map[string]bool{}
	for range 50 {
		id, s := st.create("u", "")
		if len(id) != 43 || len(s.csrf) != 43 || seen[id] || seen[s.csrf] || id == s.csrf {
			t.Fatalf("id %q token %q: want distinct 256-bit values", id, s.csrf)
		}
		seen[id], seen[s.csrf] = true, true
	}
	if st.get("") != nil || st.get("not-a-session") != nil {
		t.Error("an unknown cookie found a session")
	}
	id, s := st.create("u", "")
	st.setFlash(s, flash{Text: "done"})
	if f := st.takeFlash(s); f == nil || f.Text != "done" {
		t.Errorf("flash = %v", f)
	}
	if f := st.takeFlash(s); f != nil {
		t.Errorf("flash shown twice: %v", f)
	}
	st.end(id)
	st.end(id) // twice is harmless
	if st.get(id) != nil {
		t.Error("an ended session is still found")
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "/",
		"/":                     "/",
		"/admin/policies?x=1":   "/admin/policies?x=1",
		"//attacker.example/":   "/",
		"/\\attacker.example":   "/",
		"https://attacker.test": "/",
		"admin":                 "/",
		"/a\r\nSet-Cookie: x=1": "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		want   bool
	}{
		{"no Origin, no Referer (the token decides)", nil, true},
		{"same origin", []string{"Origin", "http://127.0.0.1:8080"}, true},
		{"another host name", []string{"Origin", "http://localhost:8080"}, false},
		{"other port", []string{"Origin", "http://127.0.0.1:9090"}, false},
		{"other site", []string{"Origin", "https://attacker.example"}, false},
		{"opaque origin", []string{"Origin", "null"}, false},
		{"Referer of this host", []string{"Referer", "http://127.0.0.1:8080/board/retrieve?code=10"}, true},
		{"Referer of another site", []string{"Referer", "http://attacker.example/x"}, false},
		{"Origin wins over Referer", []string{"Origin", "http://attacker.example", "Referer", "http://127.0.0.1:8080/"}, false},
		{"fetch metadata: cross-site", []string{"Sec-Fetch-Site", "cross-site"}, false},
		{"fetch metadata: same-site (another port)", []string{"Sec-Fetch-Site", "same-site"}, false},
		{"fetch metadata: same-origin", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://127.0.0.1:8080"}, true},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("POST", "http://127.0.0.1:8080/signout", nil)
		for i := 0; i+1 < len(tt.header); i += 2 {
			r.Header.Set(tt.header[i], tt.header[i+1])
		}
		if got := sameOrigin(r); got != tt.want {
			t.Errorf("%s: sameOrigin = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                      "0 s",
		0:                                 "0 s",
		999 * time.Millisecond:            "0 s",
		9 * time.Second:                   "9 s",
		4*time.Minute + 9*time.Second:     "4 min 09 s",
		59*time.Minute + 59*time.Second:   "59 min 59 s",
		time.Hour + 5*time.Minute + 30e9:  "1 h 05 min",
		26*time.Hour + 59*time.Minute + 1: "26 h 59 min",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBoardOf(t *testing.T) {
	now := epoch.Add(time.Hour)
	orbits := []park.OrbitInfo{
		{Policy: "DemoPark", Code: 10, ParkedParty: park.Party{User: "1001", Display: "Alice"}, Parker: park.Party{User: "1002"},
			ParkedAt: now.Add(-65 * time.Second), RingbackAt: now.Add(235 * time.Second), State: park.StateParked, Node: "a"},
		{Policy: "demopark", Code: 12, ParkedParty: park.Party{Display: "Carrier"}, ParkedAt: now.Add(-5 * time.Minute),
			RingbackAt: now, State: park.StateRinging, Node: "b"},
		{Policy: "Sales", Code: 500, ParkedAt: now, RingbackAt: now.Add(10 * time.Minute), State: park.StateParked, Node: "a"},
	}
	d := boardOf(orbits, "a", now)
	if d.Total != 3 || len(d.Groups) != 2 || d.Groups[0].Policy != "DemoPark" || len(d.Groups[0].Orbits) != 2 || d.Groups[1].Policy != "Sales" {
		t.Fatalf("groups %+v", d.Groups)
	}
	first, ringing, sales := d.Groups[0].Orbits[0], d.Groups[0].Orbits[1], d.Groups[1].Orbits[0]
	if first.Caller != "Alice (1001)" || first.Parker != "1002" || first.ParkedFor != "1 min 05 s" || first.RingsIn != "3 min 55 s" || first.Elsewhere != "" {
		t.Errorf("first row %+v", first)
	}
	if !ringing.Ringing || ringing.RingsIn != "" || ringing.Caller != "Carrier" || ringing.Parker != "unknown" || ringing.Elsewhere != "b" {
		t.Errorf("ringing row %+v", ringing)
	}
	if sales.Key() != "Sales/500" || !strings.HasPrefix(sales.RetrieveURL(), "/board/retrieve?code=500&policy=Sales") {
		t.Errorf("sales row key %q, retrieve URL %q", sales.Key(), sales.RetrieveURL())
	}
}

func TestRowsCache(t *testing.T) {
	now := epoch
	orbit := park.OrbitInfo{Policy: "DemoPark", Code: 10, ParkedParty: park.Party{User: "1001"}, ParkedAt: now, RingbackAt: now.Add(5 * time.Minute), State: park.StateParked}
	renders := 0
	render := func(d *boardData) (template.HTML, error) {
		renders++
		return template.HTML(strconv.Itoa(renders)), nil
	}
	var c rowsCache
	get := func(orbits []park.OrbitInfo, at time.Time, admin bool) string {
		d := boardOf(orbits, "", at)
		d.Admin = admin
		h, err := c.get(&d, render)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	ringing := orbit
	ringing.State = park.StateRinging
	other := orbit
	other.Code = 11
	steps := []struct {
		name   string
		orbits []park.OrbitInfo
		at     time.Time
		admin  bool
		want   string
	}{
		{"first render", []park.OrbitInfo{orbit}, now, true, "1"},
		{"same calls, later: the times are the page's", []park.OrbitInfo{orbit}, now.Add(30 * time.Second), true, "1"},
		{"the other view renders its own", []park.OrbitInfo{orbit}, now, false, "2"},
		{"a state changed", []park.OrbitInfo{ringing}, now, true, "3"},
		{"a call added", []park.OrbitInfo{ringing, other}, now, true, "4"},
		{"as it was", []park.OrbitInfo{ringing, other}, now.Add(time.Minute), true, "4"},
		{"empty", nil, now, true, "5"},
	}
	for _, s := range steps {
		if got := get(s.orbits, s.at, s.admin); got != s.want {
			t.Errorf("%s: rendering %s, want %s", s.name, got, s.want)
		}
	}
}
