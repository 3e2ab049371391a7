package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
	"github.com/ecscorr/ecscorr/sinks/slack/slacktest"
)

func webhookSink(t *testing.T, f *slacktest.Server, cfg Config, store pipeline.StateStore) *Sink {
	t.Helper()
	t.Setenv("TEST_SLACK_WEBHOOK", f.WebhookURL())
	cfg.WebhookURLEnv = "TEST_SLACK_WEBHOOK"
	s, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func botSink(t *testing.T, f *slacktest.Server, cfg Config, store pipeline.StateStore) *Sink {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(slacktest.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TokenFile, cfg.BaseURL = file, f.APIURL()
	if cfg.Channel == "" {
		cfg.Channel = "C0CHANNEL"
	}
	s, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func got(f *slacktest.Server) ([]slacktest.Message, int) { return f.Messages(), f.Requests() }

func bigIncident() pipeline.Incident {
	inc := sinktest.Incident(sinktest.Create(7, pipeline.SeverityCritical))
	inc.ID = strings.Repeat("0123456789", 30) // a block id holds 255 bytes
	inc.Title = strings.Repeat("Very long title <&> ", 40)
	inc.Summary = strings.Repeat("summary & more <b> ", 400)
	inc.Remediation = strings.Repeat("aws ecs stop-task --task x && echo <done>\n", 300)
	inc.Events = nil
	for i := range 500 {
		inc.Events = append(inc.Events, pipeline.EventRef{Source: pipeline.SourceFalco, ID: fmt.Sprint(i), Type: strings.Repeat("Terminal shell in container <sh> ", 3), Time: sinktest.T0.Add(time.Duration(i) * time.Second), Step: "shell"})
	}
	inc.EventsDropped = 7
	for i := range 400 {
		inc.Mitre = append(inc.Mitre, fmt.Sprintf("T%04d.%03d", 1000+i, i))
	}
	inc.Runbook = "https://runbooks.example/reverse-shell"
	return inc
}

// A huge incident still makes a message Slack takes, with the header cut
// to 150 characters and the evidence ending in "and N more".
func TestBlocksStayWithinLimits(t *testing.T) {
	for _, c := range []struct {
		maxEv, shown int
	}{{0, 15}, {3, 3}, {1000, 19}} {
		f := slacktest.New(t)
		s := webhookSink(t, f, Config{MaxEvidence: c.maxEv}, nil)
		inc := bigIncident()
		if err := s.Deliver(context.Background(), []pipeline.Incident{inc}); err != nil {
			t.Fatalf("max %d: %v", c.maxEv, err)
		}
		msgs, _ := got(f)
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		m := msgs[0]
		h := m.Blocks[0].Text.Text
		// 149 characters, 150 UTF-16 units: the emoji counts twice.
		if utf8.RuneCountInString(h) != 149 || len(utf16.Encode([]rune(h))) != 150 || !strings.HasSuffix(h, "…") || !strings.HasPrefix(h, "🔴 CRITICAL: Very long title <&>") {
			t.Fatalf("header %q (%d)", h, utf8.RuneCountInString(h))
		}
		var ev string
		for _, b := range m.Blocks {
			if b.Text != nil && strings.HasPrefix(b.Text.Text, "*Evidence*") {
				ev = b.Text.Text
			}
		}
		lines := strings.Count(ev, "\n`")
		if lines != c.shown || !strings.HasSuffix(ev, fmt.Sprintf("\n_… and %d more_", 507-c.shown)) || utf8.RuneCountInString(ev) > 3000 {
			t.Fatalf("max %d: %d evidence lines, want %d; tail %q", c.maxEv, lines, c.shown, ev[max(0, len(ev)-40):])
		}
		if strings.Contains(ev, "<sh>") || !strings.Contains(ev, "&lt;sh&gt;") {
			t.Fatalf("evidence not escaped")
		}
		if len(m.Blocks) != 7 || m.Text == "" || f.WithoutText() != 0 {
			t.Fatalf("%d blocks, text %q", len(m.Blocks), m.Text)
		}
		if fl := m.Blocks[1].Fields; len(fl) != 9 || fl[2].Text != "*Task*\n`00000000000000000000000000000008`" || fl[4].Text != "*Cluster*\npayments-prod" {
			t.Fatalf("fields %+v", fl)
		}
	}
}

// The webhook's answers are classified as Slack means them.
func TestWebhookAnswers(t *testing.T) {
	f := slacktest.New(t)
	s := webhookSink(t, f, Config{Timeout: 200 * time.Millisecond}, nil)
	inc := sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))
	for _, e := range []string{"invalid_payload", "invalid_blocks", "channel_not_found", "channel_is_archived", "action_prohibited", "invalid_token"} {
		f.Refuse(inc.ID, e)
		err := s.Deliver(context.Background(), []pipeline.Incident{inc})
		if !errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d %s", slacktest.WebhookStatus(e), e)) {
			t.Fatalf("%s: %v", e, err)
		}
	}
	f.Refuse(inc.ID, "rollup_error")
	if err := s.Deliver(context.Background(), []pipeline.Incident{inc}); err == nil || errors.Is(err, pipeline.ErrPermanent) || err.Error() != "webhook: HTTP 500 rollup_error" {
		t.Fatalf("500: %v", err)
	}
	f.Refuse(inc.ID, "")
	f.Throttle(1)
	var ra *pipeline.RetryAfterError
	if err := s.Deliver(context.Background(), []pipeline.Incident{inc}); !errors.As(err, &ra) || ra.After != 7*time.Second || errors.Is(err, pipeline.ErrPermanent) {
		t.Fatalf("429: %v", err)
	}
	if err := s.Deliver(context.Background(), []pipeline.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	if msgs, n := got(f); len(msgs) != 1 || n != 9 {
		t.Fatalf("%d messages of %d requests, want 1 of 9", len(msgs), n)
	}
}

// Timeouts and a dead server are retried, and their errors do not quote
// the webhook URL.
func TestWebhookTransportErrorsRetryWithoutTheURL(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer slow.Close()
	defer close(block)
	t.Setenv("SLOW_HOOK", slow.URL+"/services/T1/B1/"+slacktest.WebhookSecret)
	s, err := New(Config{WebhookURLEnv: "SLOW_HOOK", Timeout: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inc := sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))
	err = s.Deliver(context.Background(), []pipeline.Incident{inc})
	if err == nil || errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "deadline exceeded") || strings.Contains(err.Error(), slacktest.WebhookSecret) {
		t.Fatalf("timeout: %v", err)
	}
	t.Setenv("DEAD_HOOK", "http://127.0.0.1:1/services/T1/B1/"+slacktest.WebhookSecret)
	dead, err := New(Config{WebhookURLEnv: "DEAD_HOOK"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = dead.Deliver(context.Background(), []pipeline.Incident{inc})
	if err == nil || errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), slacktest.WebhookSecret) {
		t.Fatalf("refused: %v", err)
	}
	if got := fmt.Sprintf("%v %+v %#v %s", dead, dead, *dead.webhook, dead.webhook); strings.Contains(got, slacktest.WebhookSecret) {
		t.Fatalf("the sink prints its webhook: %s", got)
	}
}

// The Web API's ok:false errors and status codes.
func TestWebAPIAnswers(t *testing.T) {
	f := slacktest.New(t)
	s := botSink(t, f, Config{}, nil)
	inc := sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))
	deliver := func() error { return s.Deliver(context.Background(), []pipeline.Incident{inc}) }
	for _, e := range []string{"invalid_blocks", "channel_not_found", "msg_too_long", "missing_scope"} {
		f.Refuse(inc.ID, e)
		if err := deliver(); !errors.Is(err, pipeline.ErrPermanent) || !strings.HasSuffix(err.Error(), "chat.postMessage: "+e) {
			t.Fatalf("%s: %v", e, err)
		}
	}
	f.Refuse(inc.ID, "internal_error")
	if err := deliver(); err == nil || errors.Is(err, pipeline.ErrPermanent) {
		t.Fatalf("internal_error: %v", err)
	}
	f.Refuse(inc.ID, "")
	f.SetDown(503)
	if err := deliver(); err == nil || errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("503: %v", err)
	}
	f.SetDown(0)
	f.Throttle(1)
	var ra *pipeline.RetryAfterError
	if err := deliver(); !errors.As(err, &ra) || ra.After != 7*time.Second {
		t.Fatalf("429: %v", err)
	}
	archived := botSink(t, f, Config{Channel: "C_ARCHIVED"}, nil)
	if err := archived.Deliver(context.Background(), []pipeline.Incident{inc}); !errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "is_archived") {
		t.Fatalf("archived: %v", err)
	}
	wrong := botSink(t, f, Config{}, nil)
	wrong.token = &secret{"xoxb-wrong"}
	if err := wrong.Deliver(context.Background(), []pipeline.Incident{inc}); !errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), "xoxb") {
		t.Fatalf("auth: %v", err)
	}
	if msgs, n := got(f); len(msgs) != 0 || n != 9 {
		t.Fatalf("%d messages of %d requests", len(msgs), n)
	}
}

// On a webhook a change becomes a short follow-up at most once per update
// window, or at once when the severity or status changes; a change already
// posted is not posted again.
func TestWebhookFollowUps(t *testing.T) {
	f := slacktest.New(t)
	s := webhookSink(t, f, Config{}, nil)
	steps := []struct {
		ev   *pipeline.Event
		post bool
	}{
		{sinktest.Create(3, pipeline.SeverityHigh), true},
		{sinktest.Create(3, pipeline.SeverityHigh), false},                              // redelivery
		{sinktest.Update(3, 1, pipeline.SeverityHigh, 10*time.Minute, false), false},    // within the hour
		{sinktest.Update(3, 2, pipeline.SeverityHigh, 62*time.Minute, false), true},     // an hour after the last post
		{sinktest.Update(3, 3, pipeline.SeverityHigh, 70*time.Minute, false), false},    // within the hour again
		{sinktest.Update(3, 4, pipeline.SeverityCritical, 71*time.Minute, false), true}, // escalation
		{sinktest.Update(3, 5, pipeline.SeverityCritical, 72*time.Minute, true), true},  // resolve
		{sinktest.Update(3, 5, pipeline.SeverityCritical, 72*time.Minute, true), false}, // redelivery
	}
	for i, st := range steps {
		before, _ := got(f)
		if err := s.Deliver(context.Background(), []pipeline.Incident{sinktest.Incident(st.ev)}); err != nil {
			t.Fatal(err)
		}
		after, _ := got(f)
		if posted := len(after) > len(before); posted != st.post {
			t.Fatalf("step %d: posted %v, want %v", i, posted, st.post)
		}
	}
	msgs, _ := got(f)
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	if h := msgs[0].Blocks[0].Text.Text; h != "🟠 HIGH: Reverse shell in task 3 of payments-prod" {
		t.Fatalf("alert header %q", h)
	}
	for i, w := range []string{
		"🟠 *Update*: count 3 · last seen 01-02 04:06:05Z",
		"🔴 *Update*: severity HIGH → *CRITICAL* · count 5 · last seen 01-02 04:15:05Z",
		"✅ *Resolved*: status *resolved* by falco resolve · count 6 · last seen 01-02 04:16:05Z",
	} {
		if got := msgs[i+1].Blocks[0].Text.Text; got != w || msgs[i+1].Incident != "inc-e003" {
			t.Fatalf("follow-up %d: %q, want %q", i, got, w)
		}
	}
	// The follow-up after the window shows the evidence since the last post.
	if ev := msgs[1].Blocks[1].Text.Text; ev != "*New evidence* (UTC)\n`01-02 04:06:05` *falco* update (repeat)" {
		t.Fatalf("new evidence %q", ev)
	}
}

// With a bot token: the first change is posted; a later one is replied in
// its thread and the first message edited to the current state. A failed
// edit is retried without replying again.
func TestBotThreadsAndEdits(t *testing.T) {
	f := slacktest.New(t)
	s := botSink(t, f, Config{}, nil)
	deliver := func(ev *pipeline.Event) error {
		return s.Deliver(context.Background(), []pipeline.Incident{sinktest.Incident(ev)})
	}
	if err := deliver(sinktest.Create(5, pipeline.SeverityHigh)); err != nil {
		t.Fatal(err)
	}
	if err := deliver(sinktest.Create(5, pipeline.SeverityHigh)); err != nil {
		t.Fatal(err)
	}
	// The edit fails once after the reply went out.
	f.FailUpdates(1)
	up := sinktest.Update(5, 1, pipeline.SeverityCritical, 5*time.Minute, false)
	if err := deliver(up); err == nil || errors.Is(err, pipeline.ErrPermanent) {
		t.Fatalf("failed edit: %v", err)
	}
	if err := deliver(up); err != nil {
		t.Fatal(err)
	}
	msgs, _ := got(f)
	var kinds []string
	for _, m := range msgs {
		kinds = append(kinds, m.Kind)
	}
	if strings.Join(kinds, ",") != "post,reply,update" {
		t.Fatalf("messages %v", kinds)
	}
	top, reply, upd := msgs[0], msgs[1], msgs[2]
	if reply.ThreadTS != top.TS || upd.TS != top.TS || !reply.Broad || top.TS != "1767323045.000001" {
		t.Fatalf("reply %+v / update %+v of top %s", reply, upd, top.TS)
	}
	shown, _ := f.Shown(top.TS)
	h := shown.Blocks[0].Text.Text
	if h != "🔴 CRITICAL: Reverse shell in task 5 of payments-prod" {
		t.Fatalf("edited header %q", h)
	}
}

func TestNewRefusesBadConfigWithoutQuotingSecrets(t *testing.T) {
	t.Setenv("HOOK_BAD", "::not a url "+slacktest.WebhookSecret)
	t.Setenv("TOKEN_USER", "xoxp-"+slacktest.WebhookSecret)
	t.Setenv("EMPTY", " ")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "configure either a webhook URL or a bot token"},
		{Config{WebhookURLEnv: "HOOK_BAD", TokenEnv: "TOKEN_USER"}, "configure either a webhook URL or a bot token"},
		{Config{WebhookURLEnv: "HOOK_BAD"}, "the webhook URL from $HOOK_BAD is not an http(s) URL"},
		{Config{WebhookURLEnv: "EMPTY"}, "the webhook URL in $EMPTY is empty"},
		{Config{TokenEnv: "TOKEN_USER", Channel: "C1"}, "the token from $TOKEN_USER is not a bot token (xoxb-…)"},
		{Config{TokenFile: "/nonexistent/token", Channel: "C1"}, "reading the bot token: open /nonexistent/token: no such file or directory"},
	} {
		_, err := New(c.cfg, nil)
		if err == nil || !strings.HasSuffix(err.Error(), c.want) || strings.Contains(err.Error(), slacktest.WebhookSecret) {
			t.Errorf("%+v: %v, want …%s", c.cfg, err, c.want)
		}
	}
	if p := DefaultPolicy(); p.BatchSize != 1 || p.Rate != 1 {
		t.Fatalf("policy %+v", p)
	}
}

// failingStore fails the next commits it is told to.
type failingStore struct {
	pipeline.StateStore
	fail *int
}

type failingTxn struct {
	pipeline.StateTxn
	fail *int
}

func (s failingStore) Begin() pipeline.StateTxn { return failingTxn{s.StateStore.Begin(), s.fail} }

func (t failingTxn) Commit() error {
	if *t.fail > 0 {
		*t.fail--
		t.StateTxn.Cancel()
		return errors.New("disk full")
	}
	return t.StateTxn.Commit()
}

// A crash between Slack's answer and the commit of what was posted is the
// one way to post twice: the retry posts the incident once more, and only
// once. A redelivery after the commit (a restart before the outbox was
// cleared) posts nothing.
func TestCrashBetweenPostAndCommitPostsAtMostOnceMore(t *testing.T) {
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, mode := range []string{"webhook", "bot"} {
		f := slacktest.New(t)
		fail := 1
		mk := func(store pipeline.StateStore) *Sink {
			if mode == "bot" {
				return botSink(t, f, Config{Name: mode}, store)
			}
			return webhookSink(t, f, Config{Name: mode}, store)
		}
		inc := []pipeline.Incident{sinktest.Incident(sinktest.Create(1, pipeline.SeverityHigh))}
		s := mk(failingStore{st, &fail})
		if err := s.Deliver(context.Background(), inc); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("%s: %v", mode, err)
		}
		if err := s.Deliver(context.Background(), inc); err != nil {
			t.Fatal(err)
		}
		// Restarted, the same change comes again from the outbox.
		if err := mk(st).Deliver(context.Background(), inc); err != nil {
			t.Fatal(err)
		}
		if msgs, reqs := got(f); len(msgs) != 2 || reqs != 2 {
			t.Fatalf("%s: %d posted in %d requests, want 2", mode, len(msgs), reqs)
		}
	}
}

// ttlStore records the expiry of every write.
type ttlStore struct {
	pipeline.StateStore
	ttls *[]time.Duration
}

type ttlTxn struct {
	pipeline.StateTxn
	ttls *[]time.Duration
}

func (s ttlStore) Begin() pipeline.StateTxn { return ttlTxn{s.StateStore.Begin(), s.ttls} }

func (t ttlTxn) Set(k, v []byte, ttl time.Duration) {
	*t.ttls = append(*t.ttls, ttl)
	t.StateTxn.Set(k, v, ttl)
}

// What was posted is forgotten Remember after the last post (30 days by
// default), so the state does not grow with every incident ever seen.
func TestStateExpires(t *testing.T) {
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := slacktest.New(t)
	var ttls []time.Duration
	for _, c := range []Config{{}, {Remember: 48 * time.Hour}} {
		s := webhookSink(t, f, c, ttlStore{st, &ttls})
		if err := s.Deliver(context.Background(), []pipeline.Incident{sinktest.Incident(sinktest.Create(len(ttls), pipeline.SeverityHigh))}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(ttls) != "[720h0m0s 48h0m0s]" {
		t.Fatalf("expiries %v", ttls)
	}
}

// A key the labelled fields do not cover (a Sigma correlation's group-by
// field) is shown too, by its name, after the entity and before Seen.
func TestBlocksShowTheRestOfTheKey(t *testing.T) {
	inc := pipeline.Incident{ID: "0123456789abcdef0123456789abcdef", Rule: "c", Title: "Many failed logins", Severity: pipeline.SeverityHigh,
		Status: pipeline.IncidentOpen, Count: 1, FirstSeen: time.Unix(0, 0).UTC(), LastSeen: time.Unix(60, 0).UTC(),
		Key: map[string]string{"userIdentity.arn": "arn:aws:iam::111122223333:user/alice", "account": "111122223333", "sourceIPAddress": ""}}
	_, blocks := alertBlocks(&inc, 15)
	var got []string
	for _, f := range blocks[1].Fields {
		got = append(got, strings.SplitN(f.Text, "\n", 2)[0])
	}
	if s := strings.Join(got, " "); s != "*Severity* *Status* *Account* *userIdentity.arn* *Seen*" {
		t.Errorf("fields %s", s)
	}
	if f := blocks[1].Fields[3].Text; f != "*userIdentity.arn*\n`arn:aws:iam::111122223333:user/alice`" {
		t.Errorf("field %q", f)
	}
}
