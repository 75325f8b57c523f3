package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/parkswitch/parkswitch/notify"
	"github.com/parkswitch/parkswitch/store"
)

func TestWebhooks(t *testing.T) {
	main := `server:
  domain: contoso.com
notify:
  webhooks:
    - url: https://hooks.slack.com/services/T0/B0/abc
      format: Slack
      events: [parked, retrieved]
      secret: 0123456789abcdef
      username: Park bot
    - url: http://127.0.0.1:9000/parkswitch
`
	c, err := parse(main, "")
	if err != nil {
		t.Fatalf("valid webhooks refused:\n%v", err)
	}
	want := []Webhook{
		{URL: "https://hooks.slack.com/services/T0/B0/abc", Format: notify.FormatSlack, Events: []store.EventType{store.EventParked, store.EventRetrieved},
			Secret: "0123456789abcdef", Username: "Park bot", Line: 5},
		{URL: "http://127.0.0.1:9000/parkswitch", Format: notify.FormatJSON, Line: 10},
	}
	if !reflect.DeepEqual(c.Notify.Webhooks, want) {
		t.Errorf("webhooks %+v\n want %+v", c.Notify.Webhooks, want)
	}
	hooks := c.Notify.NotifyWebhooks()
	if len(hooks) != 2 || hooks[0].URL != want[0].URL || hooks[0].Secret != want[0].Secret || hooks[1].Events != nil {
		t.Errorf("as notify takes them: %+v", hooks)
	}
	// Without the section: none.
	c, err = parse("server:\n  domain: contoso.com\nnotify:\n  webhooks: []\n", "")
	if err != nil || len(c.Notify.Webhooks) != 0 {
		t.Errorf("empty notify: %+v, %v", c.Notify, err)
	}
}

func TestWebhookProblems(t *testing.T) {
	const head = "server:\n  domain: contoso.com\nnotify:\n  webhooks:\n" // lines 1–4
	tests := []struct {
		name string
		main string
		want []want
	}{
		{"no url", head + "    - format: slack\n",
			[]want{{"", 5, "webhook has no url: add the url key"}}},
		{"no scheme", head + "    - url: hooks.slack.com/services/T0/B0/TOKEN\n",
			[]want{{"", 5, "webhook url has no scheme: write https://"}}},
		{"ftp", head + "    - url: ftp://files.example/TOKEN\n",
			[]want{{"", 5, "webhook url has scheme ftp: use https://"}}},
		{"no host", head + "    - url: https:///services/TOKEN\n",
			[]want{{"", 5, "webhook url https:// has no host"}}},
		{"not a URL", head + "    - url: \"https://exa mple.com/TOKEN\"\n",
			[]want{{"", 5, "webhook url is not a URL: paste the incoming webhook URL"}}},
		{"unknown format", head + "    - url: https://x.example/TOKEN\n      format: discord\n",
			[]want{{"", 6, `webhook format "discord" is unknown: use json, slack, teams or mattermost`}}},
		{"unknown event", head + "    - url: https://x.example/TOKEN\n      events: [parked, ringback, sold]\n",
			[]want{
				{"", 6, `webhook event "ringback" is unknown: did you mean ringback.started or ringback.answered? Otherwise use some of call.started`},
				{"", 6, `webhook event "sold" is unknown: use some of call.started, call.answered, call.ended, parked, retrieved`},
			}},
		{"event twice", head + "    - url: https://x.example/TOKEN\n      events: [parked, PARKED]\n",
			[]want{{"", 6, "webhook event parked is listed twice: remove one"}}},
		{"events not a list", head + "    - url: https://x.example/TOKEN\n      events: parked\n",
			[]want{{"", 6, "events must be a list"}}},
		{"short secret", head + "    - url: https://x.example/TOKEN\n      secret: abc\n",
			[]want{{"", 6, "webhook secret is shorter than 16 characters"}}},
		{"username for teams", head + "    - url: https://x.example/TOKEN\n      format: teams\n      username: bot\n",
			[]want{{"", 7, "webhook username is only used by the slack and mattermost formats, not teams"}}},
		{"twice", head + "    - url: https://x.example/TOKEN\n    - {url: https://x.example/TOKEN, format: json}\n",
			[]want{{"", 6, "this webhook posts to the same URL in the same format as the one at line 5"}}},
		{"unknown key", head + "    - url: https://x.example/TOKEN\n      secrett: 0123456789abcdef\n",
			[]want{{"", 6, `unknown key "secrett" in webhook: did you mean secret?`}}},
		{"unknown key in notify", "server:\n  domain: contoso.com\nnotify:\n  webhook: []\n",
			[]want{{"", 4, `unknown key "webhook" in notify: did you mean webhooks?`}}},
		{"entry not a mapping", head + "    - https://x.example/TOKEN\n",
			[]want{{"", 5, "webhook must be a mapping of key: value lines, not a single value"}}},
		{"too many", head + manyWebhooks(notify.MaxWebhooks+1),
			[]want{{"", 5, "notify.webhooks lists 33 webhooks, more than 32"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.main, "")
			checkProblems(t, err, tt.want)
			// The URL holds the channel's token: no message may quote it.
			if err != nil && strings.Contains(err.Error(), "TOKEN") {
				t.Errorf("a problem quotes the URL's secret part:\n%v", err)
			}
		})
	}
}

func manyWebhooks(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("    - url: https://x.example/TOKEN" + strings.Repeat("x", i) + "\n")
	}
	return b.String()
}
