package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/sip/siptest"
)

// boardLimit is how soon a change must show on the board (SPEC §12).
const boardLimit = time.Second

// parkFor has parker REFER its call to the park address and returns when
// the switch accepted (202); the parker's leg is hung up once the REFER's
// NOTIFY came. The parked party is re-INVITEd to music meanwhile.
func parkFor(t testing.TB, ctx context.Context, parker, parked *siptest.Call) time.Time {
	t.Helper()
	if code, err := parker.Refer(ctx, parkURI); err != nil || code != 202 {
		t.Fatalf("REFER to park: %d %v", code, err)
	}
	at := time.Now()
	select {
	case <-parker.Notifies():
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY after the park")
	}
	if err := parker.Hangup(ctx); err != nil {
		t.Fatalf("parker hangs up: %v", err)
	}
	return at
}

// TestBrowserBoard: signed in as an admin in Chromium, a call parked
// through the switch shows on the board within 1 s, with its code, caller
// and parker; the times count down in the page; "Retrieve to…" rings the
// chosen user, who takes the call, and the row goes within 1 s; a viewer
// gets no Retrieve to…, a phone-sized screen stacked rows and the wall
// display large type. The screenshot of the board with two parked calls
// goes to PARKSWITCH_BOARD_SCREENSHOT when set (docs/board.png).
func TestBrowserBoard(t *testing.T) {
	br := startBrowser(t)
	ts := startServer(t, pagesYAML(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := "http://" + ts.httpAddr()
	alice, bob, carol := phone(t, ctx, ts, "1001", "udp"), phone(t, ctx, ts, "1002", "udp"), phone(t, ctx, ts, "1003", "udp")
	erin, frank := phone(t, ctx, ts, "1005", "udp"), phone(t, ctx, ts, "1006", "udp")

	br.signIn(base, "ops", "ops-password")
	if err := br.wait("#live:not([hidden])", "attached", 5*time.Second); err != nil {
		t.Fatalf("the board's event stream did not open: %v", err)
	}
	if got := br.text("#board"); got != "No calls are parked." {
		t.Errorf("empty board says %q", got)
	}

	a, b := call(t, ctx, alice, bob, "1002")
	took := br.shownWithin("DemoPark/10", "attached", parkFor(t, ctx, b, a), boardLimit)
	t.Logf("park to board: %v", took.Round(time.Millisecond))
	row := `#board tr[data-key="DemoPark/10"]`
	if got, want := br.text(row), "10 Alice Reception (1001) Bob Sales (1002)"; !strings.HasPrefix(got, want) {
		t.Errorf("row says %q, want it to start %q", got, want)
	}
	f, e := call(t, ctx, frank, erin, "1005")
	br.shownWithin("SalesPolicy/500", "attached", parkFor(t, ctx, e, f), boardLimit)
	if n := br.count("#board section.policy"); n != 2 {
		t.Errorf("%d policy sections, want DemoPark and SalesPolicy", n)
	}

	// The page counts: parked for goes up, rings back in goes down, by
	// the time that passed.
	seconds := func(sel string) int {
		v := br.text(sel) // "4 min 58 s" or "3 s"
		var m, s int
		if _, err := fmt.Sscanf(v, "%d min %d s", &m, &s); err != nil {
			m = 0
			if _, err := fmt.Sscanf(v, "%d s", &s); err != nil {
				t.Fatalf("%s shows %q, not a time", sel, v)
			}
		}
		return m*60 + s
	}
	since0, until0 := seconds(row+" td.since"), seconds(row+" td.until")
	time.Sleep(2500 * time.Millisecond)
	since1, until1 := seconds(row+" td.since"), seconds(row+" td.until")
	if d := since1 - since0; d < 2 || d > 4 {
		t.Errorf("parked for went from %d s to %d s in 2.5 s", since0, since1)
	}
	if d := until0 - until1; d < 2 || d > 4 || until1 < 240 {
		t.Errorf("rings back in went from %d s to %d s in 2.5 s (the timeout is 300 s)", until0, until1)
	}
	if path := os.Getenv("PARKSWITCH_BOARD_SCREENSHOT"); path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatal(err)
		}
		br.must("viewport", map[string]any{"width": 1000, "height": 520})
		br.must("screenshot", map[string]any{"path": abs})
		br.must("viewport", map[string]any{"width": 1200, "height": 760})
	}

	// Retrieve to… Carol: her phone rings, she answers and talks.
	br.click(row+" a.button", true)
	if got := br.text("main h1"); got != "Retrieve to…" {
		t.Fatalf("Retrieve to… page heading %q", got)
	}
	br.must("select", map[string]any{"selector": "select[name=user]", "value": "1003"})
	br.click(`form[action="/board/retrieve"] button[type=submit]`, true)
	if got := br.text(".flash"); got != "Ringing Carol Support (3003) for the call from Alice Reception (1001) parked at 10." {
		t.Errorf("flash after Retrieve to… says %q", got)
	}
	c := answerNext(t, ctx, carol)
	answered := time.Now()
	nextReInvite(t, a, "parked party, picked up by Carol")
	br.shownWithin("DemoPark/10", "detached", answered, boardLimit)
	talk(t, ctx, a, c, 30)

	// A phone-sized screen stacks each row; the wall display is large
	// and offers no action.
	br.must("viewport", map[string]any{"width": 390, "height": 844})
	if d := br.must("style", map[string]any{"selector": "#board tr[data-key]", "prop": "display"}); string(d.Value) != `"block"` {
		t.Errorf("on a phone a row is displayed %s, want block", d.Value)
	}
	br.must("viewport", map[string]any{"width": 1920, "height": 1080})
	br.goTo(base + "/?wall=1")
	if n := br.count("body.wall header, #board a.button"); n != 0 {
		t.Errorf("the wall display shows %d navigation or action elements", n)
	}
	if fs := br.must("style", map[string]any{"selector": "body", "prop": "font-size"}); string(fs.Value) != `"28px"` {
		t.Errorf("wall display font size %s, want 28px", fs.Value)
	}
	// The wall display is live too: Erin retrieves her call by its code.
	r, err := erin.Dial(ctx, "500")
	if err != nil {
		t.Fatalf("retrieve 500: %v", err)
	}
	br.shownWithin("SalesPolicy/500", "detached", time.Now(), boardLimit)
	talk(t, ctx, f, r, 20)

	// A viewer sees the board, without Retrieve to….
	br.goTo(base + "/")
	br.click(`form[action="/signout"] button`, true)
	br.signIn(base, "desk", "desk-password")
	a2, b2 := call(t, ctx, alice, bob, "1002")
	br.shownWithin("DemoPark/11", "attached", parkFor(t, ctx, b2, a2), boardLimit)
	if n := br.count("#board a.button"); n != 0 {
		t.Errorf("a viewer's board offers %d Retrieve to… buttons", n)
	}
	for _, hang := range []*siptest.Call{c, r, a2} {
		if err := hang.Hangup(ctx); err != nil {
			t.Error(err)
		}
	}
	br.shownWithin("DemoPark/11", "detached", time.Now(), boardLimit)
	waitDone(t, a, "Alice after Carol hung up")
	waitDone(t, f, "Frank after Erin hung up")
}
