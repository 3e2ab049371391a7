package securityhub

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/internal/sinktest"
	"github.com/ecscorr/ecscorr/sinks/securityhub/securityhubtest"
)

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

var testPolicy = pipeline.DeliveryPolicy{BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, MaxAttempts: 1 << 30, BatchSize: 100}

func runSink(t *testing.T, f *securityhubtest.Server, cfg Config, log *slog.Logger) *Sink {
	t.Helper()
	f.Setenv(t)
	cfg.Logger = log
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An outage as long as 100 incidents (Security Hub failing, then
// throttling, while ten of them change), over two runs, then recovery
// after a restart: every change is imported once, in order per incident,
// each Id with a later UpdatedAt than before, and no finding twice.
func TestOutageThenRecovery(t *testing.T) {
	st, err := state.Open(t.TempDir(), state.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := securityhubtest.New(t)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	evs := make([]*pipeline.Event, 100)
	for i := range evs {
		evs[i] = sinktest.Create(i, pipeline.SeverityHigh)
	}
	var updates []*pipeline.Event
	for i := 0; i < 100; i += 10 {
		updates = append(updates, sinktest.Update(i, 1, pipeline.SeverityCritical, 10*time.Minute, i >= 50))
	}
	f.SetDown(500)
	// Each outage run lasts until its changes are all in the outbox and
	// imports have failed (throttling asks for a second's pause).
	sinktest.RunUntil(t, st, evs, runSink(t, f, Config{}, log), testPolicy, log, func() bool {
		return f.State().Failures >= 2 && sinktest.Waiting(st, "securityhub") == 100
	})
	f.SetDown(0)
	f.Throttle(1<<30, "")
	before := f.State().Failures
	sinktest.RunUntil(t, st, updates, runSink(t, f, Config{}, log), testPolicy, log, func() bool {
		return f.State().Failures >= before+1 && sinktest.Waiting(st, "securityhub") == 110
	})
	imps, reqs, _, _ := got(f)
	if len(imps) != 0 || reqs < 3 {
		t.Fatalf("%d imported in %d requests during the outage", len(imps), reqs)
	}
	if left, err := pipeline.ListOutbox(st, "securityhub", false); err != nil || len(left) != 110 {
		t.Fatalf("outbox holds %d (%v), want 110", len(left), err)
	}
	f.Throttle(0, "")
	r := sinktest.Run(t, st, nil, runSink(t, f, Config{}, log), testPolicy, 10*time.Second, log)
	if s := r.SinkStats()["securityhub"]; s.Delivered != 110 || s.Depth != 0 || s.DeadLetters != 0 {
		t.Fatalf("stats %+v", s)
	}
	imps, _, inv, sig := got(f)
	if len(imps) != 110 || len(inv) != 0 || len(sig) != 0 || f.State().Ignored != 0 {
		t.Fatalf("%d imported, %d ignored; invalid %v; signatures %v", len(imps), f.State().Ignored, inv, sig)
	}
	type seen struct {
		updated string
		counts  []string
		states  []string
	}
	per := map[string]*seen{}
	for _, im := range imps {
		var fd struct {
			UpdatedAt, RecordState string
			ProductFields          map[string]string
		}
		json.Unmarshal(im.Raw, &fd)
		p := per[im.ID]
		if p == nil {
			p = &seen{}
			per[im.ID] = p
		}
		if fd.UpdatedAt <= p.updated {
			t.Fatalf("%s: UpdatedAt %s after %s", im.ID, fd.UpdatedAt, p.updated)
		}
		p.updated = fd.UpdatedAt
		p.counts = append(p.counts, fd.ProductFields["ecscorr/Count"])
		p.states = append(p.states, fd.RecordState)
	}
	if len(per) != 100 {
		t.Fatalf("%d findings, want 100", len(per))
	}
	for i := range 100 {
		p := per[sinktest.ID(i)]
		want, states := "1", "ACTIVE"
		if i%10 == 0 {
			want = "1,2"
			states = "ACTIVE,ACTIVE"
			if i >= 50 {
				states = "ACTIVE,ARCHIVED"
			}
		}
		if strings.Join(p.counts, ",") != want || strings.Join(p.states, ",") != states {
			t.Fatalf("%s imported with counts %v, states %v; want %s, %s", sinktest.ID(i), p.counts, p.states, want, states)
		}
	}
	for _, n := range f.State().Batches {
		if n > 100 {
			t.Fatalf("batches %v", f.State().Batches)
		}
	}
	out := logs.String()
	if strings.Contains(out, securityhubtest.SecretAccessKey) || !strings.Contains(out, "InternalException") || !strings.Contains(out, "ThrottlingException") {
		t.Fatalf("the logs hold the secret key or do not say why deliveries failed")
	}
}

// A finding Security Hub refuses, and one of an account without a role,
// are dead-lettered at their first attempt with the reason; the rest of
// their batch is imported. outbox retry re-drives them.
func TestPermanentFailureIsDeadLettered(t *testing.T) {
	st, err := state.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := securityhubtest.New(t)
	f.Fail(sinktest.ID(3), "InvalidInput")
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	evs := make([]*pipeline.Event, 10)
	for i := range evs {
		evs[i] = sinktest.Create(i, pipeline.SeverityHigh)
	}
	sinktest.InAccount(evs[5], "333333333333")
	r := sinktest.Run(t, st, evs, runSink(t, f, Config{}, log), testPolicy, 10*time.Second, log)
	imps, reqs, inv, _ := got(f)
	sent := 0
	for _, n := range f.State().Batches {
		sent += n
	}
	if len(imps) != 8 || len(inv) != 0 || sent != 9 {
		t.Fatalf("%d imported of %d sent in %d requests (%v), want 8 of 9", len(imps), sent, reqs, inv)
	}
	dead, err := pipeline.ListOutbox(st, "securityhub", true)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters %+v (%v)", dead, err)
	}
	reasons := map[string]string{}
	for _, d := range dead {
		if d.Attempts != 1 {
			t.Fatalf("%s dead after %d attempts", d.Incident.ID, d.Attempts)
		}
		reasons[d.Incident.ID] = d.LastError
	}
	if reasons[sinktest.ID(3)] != "permanent delivery failure: InvalidInput: refused by the test" ||
		reasons[sinktest.ID(5)] != "permanent delivery failure: no role configured for account 333333333333" {
		t.Fatalf("reasons %q", reasons)
	}
	if s := r.SinkStats()["securityhub"]; s.DeadLetters != 2 || s.Delivered != 8 || s.Retries != 0 {
		t.Fatalf("stats %+v", s)
	}
	if n := strings.Count(logs.String(), "outbox: incident dead-lettered"); n != 2 {
		t.Fatalf("%d dead-letter log lines", n)
	}
	// Fixed for one of them; the other account still has no role.
	f.Fail(sinktest.ID(3), "")
	if n, err := pipeline.RetryOutbox(st, "securityhub"); n != 2 || err != nil {
		t.Fatalf("retry: %d %v", n, err)
	}
	sinktest.Run(t, st, nil, runSink(t, f, Config{}, log), testPolicy, 10*time.Second, log)
	imps, _, _, _ = got(f)
	if len(imps) != 9 || imps[8].ID != sinktest.ID(3) {
		t.Fatalf("after retry: %d imported", len(imps))
	}
	if dead, _ := pipeline.ListOutbox(st, "securityhub", true); len(dead) != 1 || dead[0].Incident.ID != sinktest.ID(5) {
		t.Fatalf("dead after retry: %+v", dead)
	}
}
