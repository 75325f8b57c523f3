package config

import (
	"net/url"
	"strings"

	"github.com/parkswitch/parkswitch/notify"
	"github.com/parkswitch/parkswitch/policy"
	"github.com/parkswitch/parkswitch/store"
)

// Notify holds the notify section (SPEC §12): where what happens to
// parked calls is announced.
type Notify struct {
	// A bare URL as an entry is never quoted back: it holds the channel's token.
	Webhooks []Webhook `yaml:"webhooks" entry:"webhook" check:"secret"`
}

// Webhook is one entry of notify.webhooks.
type Webhook struct {
	URL      string            `yaml:"url" check:"required"` // http:// or https://; holds the channel's token, so it is never printed whole
	Format   notify.Format     `yaml:"format"`               // default json
	Events   []store.EventType `yaml:"events"`               // empty: notify.ParkEvents
	Secret   string            `yaml:"secret"`               // HMAC-SHA256 key of X-Parkswitch-Signature; "" signs nothing
	Username string            `yaml:"username"`             // slack and mattermost: the name posts appear under
	Line     int               `yaml:"-"`                    // line of the entry in the config file
}

// MinWebhookSecret is the shortest accepted webhook secret.
const MinWebhookSecret = 16

// NotifyWebhooks is the section as package notify takes it.
func (n Notify) NotifyWebhooks() []notify.Webhook {
	out := make([]notify.Webhook, 0, len(n.Webhooks))
	for _, w := range n.Webhooks {
		out = append(out, notify.Webhook{URL: w.URL, Format: w.Format, Events: w.Events, Secret: w.Secret, Username: w.Username})
	}
	return out
}

// checkNotify checks the notify section; its keys depend on no other
// section.
func (p *parser) checkNotify() {
	n, k := &p.c.Notify, p.root.Section("notify")
	if len(n.Webhooks) > notify.MaxWebhooks {
		p.d.Addf(k.Entry("webhooks", 0).Start(), "notify.webhooks lists %d webhooks, more than %d: post to fewer channels, or fan out from one receiver", len(n.Webhooks), notify.MaxWebhooks)
	}
	seen := map[string]int{} // URL and format to the line of the entry
	for i := range n.Webhooks {
		p.checkWebhook(&n.Webhooks[i], k.Entry("webhooks", i), seen)
	}
}

// checkWebhook checks one entry, normalising its format and events.
func (p *parser) checkWebhook(w *Webhook, k policy.Keys, seen map[string]int) {
	d := p.d
	w.Line = k.Start()
	if !k.Bad("url") {
		if msg := webhookURLProblem(w.URL); msg != "" {
			d.Addf(k.Line("url"), "%s", msg)
		}
	}
	format := w.Format
	w.Format = notify.FormatJSON
	if !k.Bad("format") && format != "" {
		w.Format = notify.Format(strings.ToLower(string(format)))
		if !w.Format.Valid() {
			d.Addf(k.Line("format"), "webhook format %q is unknown: use %s", format, formatNames())
		}
	}
	if !k.Bad("events") {
		w.Events = webhookEvents(d, k.Line("events"), w.Events)
	} else {
		w.Events = nil
	}
	if !k.Bad("secret") && w.Secret != "" && (len(w.Secret) < MinWebhookSecret || strings.TrimSpace(w.Secret) != w.Secret) {
		d.Addf(k.Line("secret"), "webhook secret is shorter than %d characters or starts or ends with a blank: use a random one, e.g. the output of `openssl rand -hex 32`, and give the receiver the same", MinWebhookSecret)
	}
	if !k.Bad("username") && w.Username != "" && w.Format != notify.FormatSlack && w.Format != notify.FormatMattermost {
		d.Addf(k.Line("username"), "webhook username is only used by the slack and mattermost formats, not %s: remove it", w.Format)
	}
	key := w.URL + " " + string(w.Format)
	if line, dup := seen[key]; dup && !k.Bad("url") {
		d.Addf(w.Line, "this webhook posts to the same URL in the same format as the one at line %d: remove one, or every event is posted twice", line)
	}
	seen[key] = w.Line
}

// webhookURLProblem says what is wrong with a webhook URL, or "". The URL
// is never quoted: its path or query is the channel's secret.
func webhookURLProblem(s string) string {
	const fix = ": paste the incoming webhook URL of the channel, e.g. https://hooks.slack.com/services/…"
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case s == "":
		return "webhook url is empty" + fix
	case err != nil:
		return "webhook url is not a URL" + fix
	case u.Scheme != "http" && u.Scheme != "https":
		if u.Scheme == "" {
			return "webhook url has no scheme: write https://… (or http://)"
		}
		return "webhook url has scheme " + u.Scheme + ": use https:// (or http://)" + fix
	case u.Hostname() == "":
		return "webhook url " + u.Scheme + ":// has no host" + fix
	case s != strings.TrimSpace(s):
		return "webhook url " + u.Scheme + "://" + u.Host + "/… starts or ends with a blank: remove it"
	}
	return ""
}

// webhookEvents checks the event names of a webhook.
func webhookEvents(d *policy.NodeDecoder, line int, names []store.EventType) []store.EventType {
	var out []store.EventType
	seen := map[store.EventType]bool{}
	for _, name := range names {
		t := store.EventType(strings.ToLower(strings.TrimSpace(string(name))))
		switch {
		case !t.Valid():
			d.Addf(line, "webhook event %q is unknown: %s", name, eventSuggestion(string(name)))
		case seen[t]:
			d.Addf(line, "webhook event %s is listed twice: remove one", t)
		default:
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// eventSuggestion names the events an unknown one may have meant, and
// every valid one.
func eventSuggestion(name string) string {
	low := strings.ToLower(strings.TrimSpace(name))
	var near []string
	for _, t := range store.EventTypes {
		if low != "" && (strings.HasPrefix(string(t), low) || strings.Contains(strings.ReplaceAll(string(t), ".", ""), strings.ReplaceAll(low, ".", ""))) {
			near = append(near, string(t))
		}
	}
	all := make([]string, len(store.EventTypes))
	for i, t := range store.EventTypes {
		all[i] = string(t)
	}
	msg := "use some of " + strings.Join(all, ", ") + ", or leave events out for every park event"
	if len(near) > 0 {
		msg = "did you mean " + strings.Join(near, " or ") + "? Otherwise " + msg
	}
	return msg
}

func formatNames() string {
	names := make([]string, len(notify.Formats))
	for i, f := range notify.Formats {
		names[i] = string(f)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
