package notify

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

const parkedText = "Call from Alice Reception (1001) parked at 12 by Carol Support"

func decode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return m
}

// at walks m by keys and list indexes, failing the test when the path
// is not there.
func at(t *testing.T, m any, path ...any) any {
	t.Helper()
	cur := m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			obj, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not an object at %q", path, k)
			}
			if cur, ok = obj[k]; !ok {
				t.Fatalf("%v: no key %q in %v", path, k, obj)
			}
		case int:
			list, ok := cur.([]any)
			if !ok || k >= len(list) {
				t.Fatalf("%v: no item %d in %v", path, k, cur)
			}
			cur = list[k]
		}
	}
	return cur
}

func TestBodyJSON(t *testing.T) {
	e := parkEvent(store.EventParked)
	e.At = time.Date(2026, 11, 25, 9, 0, 0, 120e6, time.UTC)
	body, err := Body(FormatJSON, e, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	// As GET /api/v1/events sends it: the event, nothing more.
	want, _ := json.Marshal(e)
	if string(body) != string(want) {
		t.Errorf("json body %s\n want %s", body, want)
	}
	var back store.Event
	if err := json.Unmarshal(body, &back); err != nil || !reflect.DeepEqual(back, e) {
		t.Errorf("json body decodes to %+v (%v), want %+v", back, err, e)
	}
}

func TestBodySlack(t *testing.T) {
	e := parkEvent(store.EventParked)
	e.At = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	body, err := Body(FormatSlack, e, "")
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, body)
	if got := at(t, m, "text"); got != parkedText {
		t.Errorf("text %q, want %q", got, parkedText)
	}
	if _, ok := m["username"]; ok {
		t.Error("username sent though none is configured")
	}
	if got := at(t, m, "blocks", 0, "type"); got != "section" {
		t.Errorf("first block %v", got)
	}
	if got := at(t, m, "blocks", 0, "text", "type"); got != "mrkdwn" {
		t.Errorf("section text type %v", got)
	}
	if got := at(t, m, "blocks", 0, "text", "text"); got != parkedText {
		t.Errorf("section text %q", got)
	}
	ctx := at(t, m, "blocks", 1, "elements", 0, "text").(string)
	if !strings.Contains(ctx, "Policy DemoPark") || !strings.Contains(ctx, "<!date^1795597200^") || !strings.Contains(ctx, "|2026-11-25 09:00:00 UTC>") {
		t.Errorf("context block %q", ctx)
	}

	// A caller's name cannot mention the channel or make a link.
	e.ParkedParty.Display = "<!channel> & <https://x.example|click>"
	body, _ = Body(FormatSlack, e, "parkswitch")
	m = decode(t, body)
	text := at(t, m, "text").(string)
	if strings.ContainsAny(text, "<>") || !strings.Contains(text, "&lt;!channel&gt; &amp; &lt;https://x.example|click&gt;") {
		t.Errorf("hostile name not escaped: %q", text)
	}
	if got := at(t, m, "username"); got != "parkswitch" {
		t.Errorf("username %v", got)
	}
}

func TestBodyMattermost(t *testing.T) {
	body, err := Body(FormatMattermost, parkEvent(store.EventParked), "Park bot")
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, body)
	if got := at(t, m, "text"); got != parkedText {
		t.Errorf("text %q, want %q", got, parkedText)
	}
	if got := at(t, m, "username"); got != "Park bot" {
		t.Errorf("username %v", got)
	}
	if len(m) != 2 {
		t.Errorf("keys %v, want text and username", m)
	}
	e := parkEvent(store.EventParked)
	e.ParkedParty.Display = "@channel [win](https://x.example) *now*"
	body, _ = Body(FormatMattermost, e, "")
	m = decode(t, body)
	text := at(t, m, "text").(string)
	if strings.Contains(text, "@channel") || !strings.Contains(text, `\[win\](https://x.example) \*now\*`) {
		t.Errorf("hostile name not escaped: %q", text)
	}
	if _, ok := m["username"]; ok {
		t.Error("username sent though none is configured")
	}
}

func TestBodyTeams(t *testing.T) {
	e := parkEvent(store.EventParked)
	e.At = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	body, err := Body(FormatTeams, e, "")
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, body)
	if got := at(t, m, "type"); got != "message" {
		t.Errorf("type %v, want message", got)
	}
	if n := len(at(t, m, "attachments").([]any)); n != 1 {
		t.Fatalf("%d attachments", n)
	}
	att := at(t, m, "attachments", 0)
	if got := at(t, att, "contentType"); got != "application/vnd.microsoft.card.adaptive" {
		t.Errorf("contentType %v", got)
	}
	if got, ok := att.(map[string]any)["contentUrl"]; !ok || got != nil {
		t.Errorf("contentUrl %v (present %v), want null", got, ok)
	}
	card := at(t, att, "content")
	for k, want := range map[string]string{"type": "AdaptiveCard", "version": "1.2", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json"} {
		if got := at(t, card, k); got != want {
			t.Errorf("card %s %v, want %s", k, got, want)
		}
	}
	if got := at(t, card, "body", 0, "type"); got != "TextBlock" {
		t.Errorf("first element %v", got)
	}
	if got := at(t, card, "body", 0, "text"); got != "Parked at 12" {
		t.Errorf("title %v", got)
	}
	if got := at(t, card, "body", 1, "text"); got != parkedText {
		t.Errorf("text %q, want %q", got, parkedText)
	}
	if got := at(t, card, "body", 1, "wrap"); got != true {
		t.Errorf("text wrap %v", got)
	}
	if got := at(t, card, "body", 2, "type"); got != "FactSet" {
		t.Errorf("third element %v", got)
	}
	facts := map[string]string{}
	for _, f := range at(t, card, "body", 2, "facts").([]any) {
		facts[at(t, f, "title").(string)] = at(t, f, "value").(string)
	}
	want := map[string]string{"Code": "12", "Policy": "DemoPark", "Caller": "Alice Reception (1001)", "Parked by": "Carol Support", "Time": "2026-11-25T09:00:00Z"}
	if !reflect.DeepEqual(facts, want) {
		t.Errorf("facts %v\n want %v", facts, want)
	}
}

func TestBodyUnknownFormat(t *testing.T) {
	if _, err := Body("xml", parkEvent(store.EventParked), ""); !errors.Is(err, ErrFormat) {
		t.Errorf("err %v, want ErrFormat", err)
	}
}
