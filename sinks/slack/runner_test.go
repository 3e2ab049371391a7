package slack

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
	"github.com/ecscorr/ecscorr/sinks/slack/slacktest"
)

// syncBuffer is a log destination shared by the Runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var testPolicy = pipeline.DeliveryPolicy{BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, MaxAttempts: 1 << 30, BatchSize: 1}

// The changes of the outage test: ten incidents change after the outage
// began, five escalating, two within the webhook's update window and three
// two hours later.
func outageUpdates() []*pipeline.Event {
	var evs []*pipeline.Event
	for i := 0; i < 100; i += 10 {
		switch {
		case i < 50:
			evs = append(evs, sinktest.Update(i, 1, pipeline.SeverityCritical, 10*time.Minute, false))
		case i < 70:
			evs = append(evs, sinktest.Update(i, 1, pipeline.SeverityHigh, 10*time.Minute, false))
		default:
			evs = append(evs, sinktest.Update(i, 1, pipeline.SeverityHigh, 2*time.Hour, false))
		}
	}
	return evs
}

func creates(n int) []*pipeline.Event {
	evs := make([]*pipeline.Event, n)
	for i := range evs {
		evs[i] = sinktest.Create(i, pipeline.SeverityHigh)
	}
	return evs
}

// An outage as long as 100 incidents (and ten of their updates), over two
// runs, then a restart after recovery: every incident is posted once, its
// update after it, and nothing twice; neither secret appears in any log
// line or error.
func TestOutageThenRecovery(t *testing.T) {
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			st, err := state.Open(t.TempDir(), state.Options{GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			f := slacktest.New(t)
			f.SetDown(503)
			var logs syncBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			// A new sink each run: what it remembers must come from the store.
			sink := func() *Sink {
				if mode == "bot" {
					return botSink(t, f, Config{Logger: log}, st)
				}
				return webhookSink(t, f, Config{Logger: log}, st)
			}
			var retries uint64
			// Each outage run lasts until its changes are all in the outbox and
			// deliveries have failed a few times.
			r := sinktest.RunUntil(t, st, creates(100), sink(), testPolicy, log, func() bool {
				return f.Failures() >= 3 && sinktest.Waiting(st, "slack") == 100
			})
			retries += r.SinkStats()["slack"].Retries
			// The second part of the outage drops connections: the transport
			// errors quote the URL, which must not reach a log.
			f.SetDown(0)
			f.SetHangup(true)
			before := f.Failures()
			r = sinktest.RunUntil(t, st, outageUpdates(), sink(), testPolicy, log, func() bool {
				return f.Failures() >= before+3 && sinktest.Waiting(st, "slack") == 110
			})
			retries += r.SinkStats()["slack"].Retries
			if msgs, _ := got(f); len(msgs) != 0 {
				t.Fatalf("%d posted during the outage", len(msgs))
			}
			left, err := pipeline.ListOutbox(st, "slack", false)
			if err != nil || len(left) != 110 {
				t.Fatalf("outbox holds %d (%v), want 110", len(left), err)
			}
			for _, e := range left {
				if e.Attempts > 0 && !strings.HasSuffix(e.LastError, ": EOF") && !strings.Contains(e.LastError, "HTTP 503") {
					t.Fatalf("last error %q", e.LastError)
				}
			}
			f.SetHangup(false)
			r = sinktest.Run(t, st, nil, sink(), testPolicy, 10*time.Second, log)
			retries += r.SinkStats()["slack"].Retries
			if s := r.SinkStats()["slack"]; s.Delivered != 110 || s.Depth != 0 || s.DeadLetters != 0 {
				t.Fatalf("stats %+v", s)
			}
			msgs, _ := got(f)
			first := map[string]int{}  // incident → index of its first message
			top := map[string]string{} // incident → ts (bot)
			later := map[string][]string{}
			for i, m := range msgs {
				if m.Incident == "" {
					t.Fatalf("message %d names no incident", i)
				}
				if m.IsAlert() {
					if _, dup := first[m.Incident]; dup {
						t.Fatalf("%s posted twice", m.Incident)
					}
					first[m.Incident], top[m.Incident] = i, m.TS
					continue
				}
				if _, ok := first[m.Incident]; !ok {
					t.Fatalf("%s: %s before its first message", m.Incident, m.Kind)
				}
				switch m.Kind {
				case "reply":
					if m.ThreadTS != top[m.Incident] {
						t.Fatalf("%s: reply outside its thread", m.Incident)
					}
				case "update":
					if m.TS != top[m.Incident] {
						t.Fatalf("%s: edit of another message", m.Incident)
					}
				}
				later[m.Incident] = append(later[m.Incident], m.Kind)
			}
			if len(first) != 100 {
				t.Fatalf("%d incidents posted, want 100", len(first))
			}
			var changed []string
			for id, ks := range later {
				changed = append(changed, id+":"+strings.Join(ks, "+"))
			}
			slices.Sort(changed)
			var want []string
			for i := 0; i < 100; i += 10 {
				switch {
				case mode == "bot":
					want = append(want, sinktest.ID(i)+":reply+update")
				case i < 50 || i >= 70:
					want = append(want, sinktest.ID(i)+":webhook")
				}
			}
			if strings.Join(changed, " ") != strings.Join(want, " ") {
				t.Fatalf("later messages %v, want %v", changed, want)
			}
			if n := 100 + len(want)*(1+strings.Count(want[0], "+")); len(msgs) != n {
				t.Fatalf("%d messages, want %d", len(msgs), n)
			}
			if mode == "bot" {
				shown, _ := f.Shown(top[sinktest.ID(30)])
				h := shown.Blocks[0].Text.Text
				if !strings.HasPrefix(h, "🔴 CRITICAL: ") {
					t.Fatalf("the edited first message says %q", h)
				}
			}
			out := logs.String()
			for _, secret := range []string{slacktest.WebhookSecret, slacktest.Token, "SECRETtokenPART", f.WebhookURL()} {
				if strings.Contains(out, secret) {
					t.Fatalf("a log line holds a secret")
				}
			}
			if n := strings.Count(out, "outbox: delivery failed, will retry"); retries == 0 || uint64(n) != retries {
				t.Fatalf("%d retry log lines, %d retries", n, retries)
			}
			if !strings.Contains(out, "HTTP 503") || !strings.Contains(out, "post: EOF") {
				t.Fatalf("the retries do not say why")
			}
		})
	}
}

// A payload Slack refuses is dead-lettered at its first attempt with the
// reason, the others are delivered, and outbox retry re-drives it.
func TestPermanentFailureIsDeadLettered(t *testing.T) {
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			st, err := state.OpenInMemory()
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			f := slacktest.New(t)
			reason := "invalid_blocks"
			f.Refuse(sinktest.ID(3), reason)
			var logs syncBuffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			sink := func() *Sink {
				if mode == "bot" {
					return botSink(t, f, Config{}, st)
				}
				return webhookSink(t, f, Config{}, st)
			}
			r := sinktest.Run(t, st, creates(10), sink(), testPolicy, 10*time.Second, log)
			msgs, reqs := got(f)
			if len(msgs) != 9 || reqs != 10 {
				t.Fatalf("%d posted of %d requests, want 9 of 10", len(msgs), reqs)
			}
			dead, err := pipeline.ListOutbox(st, "slack", true)
			want := "webhook: HTTP 400 invalid_blocks"
			if mode == "bot" {
				want = "chat.postMessage: invalid_blocks"
			}
			if err != nil || len(dead) != 1 || dead[0].Incident.ID != sinktest.ID(3) || dead[0].Attempts != 1 || dead[0].LastError != pipeline.ErrPermanent.Error()+": "+want {
				t.Fatalf("dead letters %+v (%v)", dead, err)
			}
			if s := r.SinkStats()["slack"]; s.DeadLetters != 1 || s.Delivered != 9 || s.Retries != 0 {
				t.Fatalf("stats %+v", s)
			}
			if n := strings.Count(logs.String(), "outbox: incident dead-lettered"); n != 1 {
				t.Fatalf("%d dead-letter log lines", n)
			}
			f.Refuse(sinktest.ID(3), "")
			if n, err := pipeline.RetryOutbox(st, "slack"); n != 1 || err != nil {
				t.Fatalf("retry: %d %v", n, err)
			}
			sinktest.Run(t, st, nil, sink(), testPolicy, 10*time.Second, log)
			msgs, reqs = got(f)
			if len(msgs) != 10 || reqs != 11 || msgs[9].Incident != sinktest.ID(3) {
				t.Fatalf("after retry: %d posted of %d requests", len(msgs), reqs)
			}
			var ids []string
			for _, m := range msgs {
				ids = append(ids, m.Incident)
			}
			slices.Sort(ids)
			if got := strings.Join(slices.Compact(ids), ","); got != strings.Join(func() []string {
				var w []string
				for i := range 10 {
					w = append(w, sinktest.ID(i))
				}
				return w
			}(), ",") {
				t.Fatalf("incidents posted: %s", got)
			}
		})
	}
}
