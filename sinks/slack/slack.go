// Package slack is the stream sink that posts incidents to Slack, through an
// incoming webhook or a bot token (chat.postMessage), as Block Kit messages
// a responder can act on from a phone.
//
// With a bot token the first change of an incident is posted to the
// channel; later changes are replies in its thread, and the first message is
// edited (chat.update) to show the current severity and status. A webhook
// cannot edit or thread: a later change becomes a short follow-up message,
// at most once per UpdateEvery of event time unless the severity or status
// changed.
//
// What was posted per incident (the thread's ts, the severity, status and
// change last posted) is kept in the state store, committed right after each
// send, so a restart neither posts an incident anew nor repeats a change: a
// crash between Slack's answer and that commit is the only way to post one
// message twice.
//
// The webhook URL and the token are secrets: neither is ever logged or put
// into an error.
package slack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Config configures a Slack sink. Set exactly one of the webhook and the
// bot token sources.
type Config struct {
	// Name is the sink's name in routes, the outbox and the state
	// (default "slack").
	Name string
	// WebhookURLEnv names the environment variable holding the
	// incoming-webhook URL; WebhookURLFile a file holding it.
	WebhookURLEnv, WebhookURLFile string
	// WebhookURL and Token are the secret itself (a config's ${ENV}
	// expansion); exactly one way of giving each is allowed.
	WebhookURL, Token string
	// TokenEnv names the environment variable holding the bot token
	// (xoxb-…); TokenFile a file holding it. Channel is the channel ID the
	// bot posts to.
	TokenEnv, TokenFile string
	Channel             string
	// BaseURL of the Web API (default https://slack.com/api).
	BaseURL string
	// UpdateEvery: on a webhook, a change of an incident already posted is
	// followed up at most once per this much event time (its last_seen),
	// unless its severity or status changed (default 1h).
	UpdateEvery time.Duration
	// Timeout of one HTTP request (default 10s).
	Timeout time.Duration
	// Remember is how long what was posted of an incident is kept after
	// its last post (default 30 days): a change after that is posted as a
	// new alert.
	Remember time.Duration
	// MaxEvidence is how many evidence lines a message shows at most
	// (default 15); the rest are counted.
	MaxEvidence int
	// HTTPClient (default: a client with Timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// DefaultPolicy is Slack's delivery policy: one message at a time, about
// one per second (the webhook and chat.postMessage rate limits).
func DefaultPolicy() pipeline.DeliveryPolicy {
	return pipeline.DeliveryPolicy{BatchSize: 1, Rate: 1, Burst: 1}
}

// secret holds a webhook URL or token; it prints as [redacted] whatever
// formats or logs it.
type secret struct{ v string }

func (secret) String() string               { return "[redacted]" }
func (secret) GoString() string             { return "[redacted]" }
func (secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Sink posts incidents to Slack.
type Sink struct {
	name string
	// The webhook URL or the bot token (the other is nil). Pointers, so
	// that printing a Sink shows an address, never the secret.
	webhook *secret
	token   *secret
	channel string
	baseURL string
	every   time.Duration
	ttl     time.Duration
	maxEv   int
	hc      *http.Client
	timeout time.Duration
	log     *slog.Logger
	store   pipeline.StateStore

	mu  sync.Mutex
	mem map[string]posted // without a store
}

// New builds a Slack sink; store keeps what was posted across restarts
// (nil keeps it in memory only).
func New(cfg Config, store pipeline.StateStore) (*Sink, error) {
	s := &Sink{name: cmp.Or(cfg.Name, "slack"), channel: cfg.Channel, baseURL: strings.TrimRight(cmp.Or(cfg.BaseURL, "https://slack.com/api"), "/"),
		every: cfg.UpdateEvery, ttl: cfg.Remember, maxEv: cfg.MaxEvidence, hc: cfg.HTTPClient, timeout: cfg.Timeout, log: cfg.Logger, store: store, mem: map[string]posted{}}
	if s.every <= 0 {
		s.every = time.Hour
	}
	if s.ttl <= 0 {
		s.ttl = 30 * 24 * time.Hour
	}
	if s.maxEv <= 0 {
		s.maxEv = 15
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: s.timeout}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	hook := cfg.WebhookURL != "" || cfg.WebhookURLEnv != "" || cfg.WebhookURLFile != ""
	bot := cfg.Token != "" || cfg.TokenEnv != "" || cfg.TokenFile != ""
	switch {
	case hook == bot:
		return nil, fmt.Errorf("slack sink %s: configure either a webhook URL or a bot token", s.name)
	case hook:
		v, err := readSecret("webhook URL", cfg.WebhookURL, cfg.WebhookURLEnv, cfg.WebhookURLFile)
		if err != nil {
			return nil, fmt.Errorf("slack sink %s: %w", s.name, err)
		}
		// The parse error would quote the URL: say only that it is bad.
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("slack sink %s: the webhook URL from %s is not an http(s) URL", s.name, source(cfg.WebhookURL, cfg.WebhookURLEnv, cfg.WebhookURLFile))
		}
		s.webhook = &secret{v}
	default:
		v, err := readSecret("bot token", cfg.Token, cfg.TokenEnv, cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("slack sink %s: %w", s.name, err)
		}
		if !strings.HasPrefix(v, "xoxb-") {
			return nil, fmt.Errorf("slack sink %s: the token from %s is not a bot token (xoxb-…)", s.name, source(cfg.Token, cfg.TokenEnv, cfg.TokenFile))
		}
		if s.channel == "" {
			return nil, fmt.Errorf("slack sink %s: a bot token needs a channel", s.name)
		}
		if _, err := url.Parse(s.baseURL); err != nil {
			return nil, fmt.Errorf("slack sink %s: base URL: %w", s.name, err)
		}
		s.token = &secret{v}
	}
	return s, nil
}

func source(val, env, file string) string {
	if val != "" {
		return "the config"
	}
	if env != "" {
		return "$" + env
	}
	return file
}

// readSecret reads a secret given as is (val), or from the environment
// variable env, or from the file.
func readSecret(what, val, env, file string) (string, error) {
	n := 0
	for _, s := range []string{val, env, file} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return "", fmt.Errorf("the %s comes from the config, an environment variable or a file: one of them", what)
	}
	v := val
	if env != "" {
		v = os.Getenv(env)
	} else if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			// The error names the file, not its content.
			return "", fmt.Errorf("reading the %s: %w", what, err)
		}
		v = string(b)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fmt.Errorf("the %s in %s is empty", what, source(val, env, file))
	}
	return v, nil
}

func (s *Sink) Name() string                { return s.name }
func (s *Sink) Mode() pipeline.SinkMode     { return pipeline.SinkStream }
func (s *Sink) Close(context.Context) error { s.hc.CloseIdleConnections(); return nil }

// posted is what the sink remembers of an incident.
type posted struct {
	// TS and Channel locate the first message (bot mode).
	TS      string `json:"ts,omitempty"`
	Channel string `json:"channel,omitempty"`
	// Severity, Status and At (last_seen) of the change last posted.
	Severity pipeline.Severity       `json:"severity"`
	Status   pipeline.IncidentStatus `json:"status"`
	At       time.Time               `json:"at"`
	// Change identifies the change last posted (the first message, a
	// follow-up or a thread reply); Shown the one the first message shows.
	Change string `json:"change"`
	Shown  string `json:"shown,omitempty"`
}

// change identifies one state of an incident: a redelivery of the same
// change is recognised and not posted again.
func change(inc *pipeline.Incident) string {
	return fmt.Sprintf("%s/%s/%d/%d/%d", inc.Severity, inc.Status, inc.Count, inc.LastSeen.UnixNano(), len(inc.Events)+inc.EventsDropped)
}

func (s *Sink) key(id string) []byte { return pipeline.FamilyKey(pipeline.FamilySink, s.name, id) }

func (s *Sink) load(id string) (posted, bool, error) {
	var p posted
	if s.store == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		p, ok := s.mem[id]
		return p, ok, nil
	}
	v, ok, err := s.store.Get(s.key(id))
	if err != nil || !ok {
		return p, false, err
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, false, fmt.Errorf("slack state of %s: %w", id, err)
	}
	return p, true, nil
}

// save records what was posted, right after Slack took it.
func (s *Sink) save(id string, p posted) error {
	if s.store == nil {
		s.mu.Lock()
		s.mem[id] = p
		s.mu.Unlock()
		return nil
	}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	txn := s.store.Begin()
	txn.Set(s.key(id), v, s.ttl)
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("recording the Slack post of %s: %w", id, err)
	}
	return nil
}

// Deliver posts each incident's change. After a throttled answer the rest
// of the batch is not tried.
func (s *Sink) Deliver(ctx context.Context, incs []pipeline.Incident) error {
	failed := map[string]error{}
	var throttled error
	for i := range incs {
		inc := &incs[i]
		if throttled != nil {
			failed[inc.ID] = throttled
			continue
		}
		var err error
		if s.token != nil {
			err = s.deliverBot(ctx, inc)
		} else {
			err = s.deliverWebhook(ctx, inc)
		}
		if err == nil {
			continue
		}
		if len(incs) == 1 {
			return err
		}
		failed[inc.ID] = err
		var ra *pipeline.RetryAfterError
		if errors.As(err, &ra) {
			throttled = err
		}
	}
	if len(failed) > 0 {
		return &pipeline.BatchError{Failed: failed}
	}
	return nil
}

func (s *Sink) deliverWebhook(ctx context.Context, inc *pipeline.Incident) error {
	prev, ok, err := s.load(inc.ID)
	if err != nil {
		return err
	}
	ch := change(inc)
	var m message
	switch {
	case !ok:
		m.Text, m.Blocks = alertBlocks(inc, s.maxEv)
	case prev.Change == ch:
		return nil // posted before a restart
	case inc.Severity == prev.Severity && inc.Status == prev.Status && inc.LastSeen.Sub(prev.At) < s.every:
		s.log.Debug("slack: change within the update window not posted", "sink", s.name, "incident", inc.ID, "count", inc.Count)
		return nil
	default:
		m.Text, m.Blocks = updateBlocks(inc, &prev, s.maxEv)
	}
	if err := s.postWebhook(ctx, &m); err != nil {
		return err
	}
	return s.save(inc.ID, posted{Severity: inc.Severity, Status: inc.Status, At: inc.LastSeen, Change: ch})
}

func (s *Sink) deliverBot(ctx context.Context, inc *pipeline.Incident) error {
	prev, ok, err := s.load(inc.ID)
	if err != nil {
		return err
	}
	ch := change(inc)
	if !ok {
		m := message{Channel: s.channel}
		m.Text, m.Blocks = alertBlocks(inc, s.maxEv)
		r, err := s.call(ctx, "chat.postMessage", &m)
		if err != nil {
			return err
		}
		if r.TS == "" {
			return errors.New("chat.postMessage: the answer has no ts")
		}
		return s.save(inc.ID, posted{TS: r.TS, Channel: cmp.Or(r.Channel, s.channel), Severity: inc.Severity, Status: inc.Status, At: inc.LastSeen, Change: ch, Shown: ch})
	}
	// The reply and the edit are recorded one by one, so a retry after
	// the edit failed does not reply again.
	if prev.Change != ch {
		m := message{Channel: prev.Channel, ThreadTS: prev.TS,
			ReplyBroadcast: inc.Severity > prev.Severity || (inc.Status != prev.Status && inc.Status == pipeline.IncidentResolved)}
		m.Text, m.Blocks = updateBlocks(inc, &prev, s.maxEv)
		if _, err := s.call(ctx, "chat.postMessage", &m); err != nil {
			return err
		}
		prev.Severity, prev.Status, prev.At, prev.Change = inc.Severity, inc.Status, inc.LastSeen, ch
		if err := s.save(inc.ID, prev); err != nil {
			return err
		}
	}
	if prev.Shown != ch {
		m := message{Channel: prev.Channel, TS: prev.TS}
		m.Text, m.Blocks = alertBlocks(inc, s.maxEv)
		if _, err := s.call(ctx, "chat.update", &m); err != nil {
			return err
		}
		prev.Shown = ch
		return s.save(inc.ID, prev)
	}
	return nil
}
