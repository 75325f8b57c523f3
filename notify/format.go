package notify

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// Format is the shape of a webhook's body.
type Format string

// The formats notify.webhooks[].format takes.
const (
	FormatJSON       Format = "json"       // the event as GET /api/v1/events sends it
	FormatSlack      Format = "slack"      // Slack incoming webhook: text and blocks
	FormatTeams      Format = "teams"      // Microsoft Teams incoming webhook or Workflows: an Adaptive Card
	FormatMattermost Format = "mattermost" // Mattermost incoming webhook: text, optional username
)

// Formats lists every Format.
var Formats = []Format{FormatJSON, FormatSlack, FormatTeams, FormatMattermost}

// Valid reports whether f is one of Formats.
func (f Format) Valid() bool {
	for _, v := range Formats {
		if f == v {
			return true
		}
	}
	return false
}

// ParkEvents are what a webhook without events is sent: every step of a
// parked call, none of the call.* events.
var ParkEvents = []store.EventType{
	store.EventParked, store.EventRetrieved, store.EventRingbackStarted,
	store.EventRingbackAnswered, store.EventAbandoned, store.EventParkedHungUp,
}

// Body is the request body of e in format f; username is the name a
// Mattermost or Slack post appears under ("" leaves the webhook's own).
func Body(f Format, e store.Event, username string) ([]byte, error) {
	var v any
	switch f {
	case FormatJSON:
		v = e
	case FormatSlack:
		v = slackBody(e, username)
	case FormatTeams:
		v = teamsBody(e)
	case FormatMattermost:
		v = mattermostBody{Text: markdownEscape(Text(e), true), Username: username}
	default:
		return nil, fmt.Errorf("%w: %q", ErrFormat, f)
	}
	return json.Marshal(v)
}

// Slack incoming webhook (https://api.slack.com/messaging/webhooks): text
// is the notification and the fallback; the blocks show it with the policy
// and the time in the reader's own time zone.
type slackMessage struct {
	Text     string       `json:"text"`
	Username string       `json:"username,omitempty"`
	Blocks   []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func slackBody(e store.Event, username string) slackMessage {
	text := slackEscape(Text(e))
	var ctx []string
	if e.Policy != "" {
		ctx = append(ctx, "Policy "+slackEscape(clean(e.Policy)))
	}
	if !e.At.IsZero() {
		// <!date^unix^format|fallback> is shown in the reader's time zone.
		at := e.At.UTC()
		ctx = append(ctx, fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", at.Unix(), at.Format("2006-01-02 15:04:05 UTC")))
	}
	m := slackMessage{Text: text, Username: username, Blocks: []slackBlock{
		{Type: "section", Text: &slackText{Type: "mrkdwn", Text: text}},
	}}
	if len(ctx) > 0 {
		m.Blocks = append(m.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: strings.Join(ctx, " · ")}}})
	}
	return m
}

// slackEscape escapes the three characters Slack's text formatting gives
// a meaning to, so that no name can mention @channel (<!channel>) or a
// user, or make a link.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

type mattermostBody struct {
	Text     string `json:"text"`
	Username string `json:"username,omitempty"`
}

// markdownEscape backslash-escapes what Markdown (Mattermost's, and the
// subset Teams' TextBlock renders) would turn into emphasis, code, links
// or HTML. With mentions, an @ is followed by a word joiner, so that a name
// such as "@channel" is not a mention that notifies everyone.
func markdownEscape(s string, mentions bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case strings.ContainsRune("\\*_~`[]<>", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '@' && mentions:
			b.WriteString("@\u2060")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Microsoft Teams: an Adaptive Card in a message, which both the
// incoming webhooks of Office 365 connectors and the Workflows app's
// "post to a channel when a webhook request is received" take.
type teamsMessage struct {
	Type        string            `json:"type"` // "message"
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"` // the Adaptive Card media type
	ContentURL  *string   `json:"contentUrl"`  // null: the card is inline
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string         `json:"$schema"`
	Type    string         `json:"type"` // "AdaptiveCard"
	Version string         `json:"version"`
	Body    []teamsElement `json:"body"`
}

// teamsElement is a TextBlock or a FactSet.
type teamsElement struct {
	Type   string      `json:"type"`
	Text   string      `json:"text,omitempty"`
	Weight string      `json:"weight,omitempty"`
	Size   string      `json:"size,omitempty"`
	Wrap   bool        `json:"wrap,omitempty"`
	Facts  []teamsFact `json:"facts,omitempty"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// Constants of the Teams card.
const (
	teamsCardType    = "application/vnd.microsoft.card.adaptive"
	teamsCardSchema  = "http://adaptivecards.io/schemas/adaptive-card.json"
	teamsCardVersion = "1.2" // what Teams renders on every client, mobile included
)

func teamsBody(e store.Event) teamsMessage {
	esc := func(s string) string { return markdownEscape(s, false) }
	card := teamsCard{Schema: teamsCardSchema, Type: "AdaptiveCard", Version: teamsCardVersion, Body: []teamsElement{
		{Type: "TextBlock", Text: esc(Title(e)), Weight: "Bolder", Size: "Medium", Wrap: true},
		{Type: "TextBlock", Text: esc(Text(e)), Wrap: true},
	}}
	if facts := teamsFacts(e); len(facts) > 0 {
		for i := range facts {
			facts[i].Value = esc(facts[i].Value)
		}
		card.Body = append(card.Body, teamsElement{Type: "FactSet", Facts: facts})
	}
	return teamsMessage{Type: "message", Attachments: []teamsAttachment{{ContentType: teamsCardType, Content: card}}}
}

// teamsFacts are the details of e, each shown when known.
func teamsFacts(e store.Event) []teamsFact {
	var facts []teamsFact
	add := func(title, value string) {
		if value != "" {
			facts = append(facts, teamsFact{Title: title, Value: value})
		}
	}
	if e.Code > 0 {
		add("Code", strconv.Itoa(e.Code))
	}
	add("Policy", clean(e.Policy))
	if e.ParkedParty != (store.Party{}) {
		add("Caller", caller(e.ParkedParty))
	}
	if e.Parker != (store.Party{}) {
		add("Parked by", person(e.Parker))
	}
	if e.Retriever != (store.Party{}) {
		add("Picked up by", person(e.Retriever))
	}
	if e.From != (store.Party{}) {
		add("From", caller(e.From))
	}
	if e.To != (store.Party{}) {
		add("To", caller(e.To))
	}
	if !e.At.IsZero() {
		add("Time", e.At.UTC().Format(time.RFC3339))
	}
	return facts
}
