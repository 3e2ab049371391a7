package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// refusingSink refuses high incidents for good and takes the rest.
type refusingSink struct{ got int }

func (s *refusingSink) Name() string                { return "slack" }
func (s *refusingSink) Mode() pipeline.SinkMode     { return pipeline.SinkStream }
func (s *refusingSink) Close(context.Context) error { return nil }
func (s *refusingSink) Deliver(_ context.Context, incs []pipeline.Incident) error {
	for _, inc := range incs {
		if inc.Severity >= pipeline.SeverityHigh {
			return pipeline.Permanent(errors.New("channel_is_archived"))
		}
		s.got++
	}
	return nil
}

// The demo through a sink that refuses high and critical incidents leaves
// them dead-lettered; `outbox list --dead` shows them with the reason,
// `retry` re-drives them, `drop --dead` deletes them.
func TestOutboxCommands(t *testing.T) {
	dir := t.TempDir()
	set, ok := loadRules(nil, new(strings.Builder), false)
	if !ok {
		t.Fatal("builtin rules")
	}
	run := func() *refusingSink {
		st, err := state.Open(dir, state.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		eng := newEngine(t, set)
		sink := &refusingSink{}
		evs := cloneEvents(demoEvents(t))
		_, _, _, err = pipeline.Replay(context.Background(), func(ctx context.Context, emit func(*pipeline.Event) error) error {
			for _, ev := range evs {
				if err := emit(ev); err != nil {
					return err
				}
			}
			return nil
		}, eng, pipeline.ReplayOptions{Store: st, Sinks: []pipeline.Sink{sink}, DrainTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return sink
	}
	sink := run()
	if sink.got == 0 {
		t.Fatal("nothing delivered")
	}
	code, out, errOut := runCmd(t, "outbox", "list", "--state", dir, "--dead")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// 4 critical and 9 high incidents in the demo, each change one entry.
	if len(lines) < 14 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(out, "channel_is_archived") || !strings.Contains(out, "CRITICAL") {
		t.Fatalf("list --dead:\n%s", out)
	}
	dead := len(lines) - 1
	if code, out, _ := runCmd(t, "outbox", "list", "--state", dir); code != 0 || strings.TrimSpace(out) != "no incidents waiting" {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out, _ := runCmd(t, "outbox", "retry", "--state", dir, "--sink", "slack"); code != 0 || !strings.HasPrefix(out, fmt.Sprint(dead)+" dead-lettered incidents wait") {
		t.Fatalf("retry: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "outbox", "list", "--state", dir, "--format", "jsonl")
	if code != 0 || strings.Count(out, "\n") != dead || strings.Contains(out, `"dead":true`) || strings.Contains(out, `"attempts"`) {
		t.Fatalf("after retry:\n%s", out)
	}
	// The channel is still archived: the next run dead-letters them again.
	run()
	if code, out, _ := runCmd(t, "outbox", "drop", "--state", dir, "--dead"); code != 0 || strings.TrimSpace(out) != fmt.Sprint(dead)+" dead-lettered incidents dropped" {
		t.Fatalf("drop: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCmd(t, "outbox", "list"); code != 2 || !strings.Contains(errOut, "--state DIR is required") {
		t.Fatalf("usage: exit %d\n%s", code, errOut)
	}
}
