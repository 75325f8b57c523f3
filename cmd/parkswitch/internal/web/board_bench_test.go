package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/parkswitch/parkswitch/park"
)

// benchSwitch lists a fixed set of orbits; the benchmark measures the
// rendering alone.
type benchSwitch struct{ orbits []park.OrbitInfo }

func (s benchSwitch) Orbits(context.Context) []park.OrbitInfo {
	return append([]park.OrbitInfo(nil), s.orbits...)
}
func (benchSwitch) Node() string         { return "a" }
func (benchSwitch) Users() []User        { return nil }
func (benchSwitch) Events() http.Handler { return http.NotFoundHandler() }
func (benchSwitch) RetrieveTo(context.Context, string, int, string) (User, error) {
	return User{}, nil
}

// openAccounts are open pages: no credentials.
type openAccounts struct{}

func (openAccounts) Open() bool      { return true }
func (openAccounts) CanSignIn() bool { return false }
func (openAccounts) SignIn(string, string, string) (Account, error) {
	return Account{}, ErrBadCredentials
}
func (openAccounts) Account(string) (Account, bool) { return Account{}, false }

// BenchmarkBoardRows serves the board's rows with 1,000 parked calls in
// three policies, as an admin sees them: rendered afresh (after a
// change), and from the cache (another board fetching the same change).
func BenchmarkBoardRows(b *testing.B) {
	now := time.Now()
	var orbits []park.OrbitInfo
	for i := range 1000 {
		orbits = append(orbits, park.OrbitInfo{
			Policy: []string{"DemoPark", "SalesPolicy", "Support"}[i%3], Code: 10 + i,
			ParkedParty: park.Party{User: strconv.Itoa(2000 + i), Display: "Caller " + strconv.Itoa(i)},
			Parker:      park.Party{User: "1002", Display: "Bob Sales"},
			ParkedAt:    now.Add(-time.Duration(i) * time.Second), RingbackAt: now.Add(time.Duration(300-i%300) * time.Second),
			State: park.StateParked, Node: "a",
		})
	}
	for _, fresh := range []bool{true, false} {
		name := "cached"
		if fresh {
			name = "rendered"
		}
		b.Run(name, func(b *testing.B) {
			s := New(Options{Accounts: openAccounts{}, Switch: benchSwitch{orbits}, Log: zerolog.Nop()})
			first := httptest.NewRecorder()
			s.ServeHTTP(first, httptest.NewRequest("GET", "/board/rows", nil))
			cookie := first.Result().Cookies()[0]
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				if fresh {
					s.rowsCache.mu.Lock()
					s.rowsCache.views = [2]rowsView{}
					s.rowsCache.mu.Unlock()
				}
				w := httptest.NewRecorder()
				r := httptest.NewRequest("GET", "/board/rows", nil)
				r.AddCookie(cookie)
				s.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("rows: %d", w.Code)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/response")
		})
	}
}
