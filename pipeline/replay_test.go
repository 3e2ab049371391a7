package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

type recorder struct{ seen []Event }

func (r *recorder) Process(_ context.Context, ev *Event) ([]Incident, error) {
	r.seen = append(r.seen, *ev)
	return nil, nil
}
func (r *recorder) Advance(context.Context, time.Time) ([]Incident, error) { return nil, nil }
func (r *recorder) Horizon() time.Duration                                 { return time.Hour }
func (r *recorder) CheckpointBatch(context.Context, StateWriter) error     { return nil }

// Links between containers and tasks are facts about ids, not about time:
// replay learns them while reading, so an alert that precedes its task's
// state change event (or sits in a file read first) still resolves.
func TestReplayResolvesAlertsBeforeTheirStateChange(t *testing.T) {
	task := "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"
	td := "arn:aws:ecs:us-east-1:111122223333:task-definition/web:7"
	alert := &Event{ID: "falco-1", Source: SourceFalco, Type: "Terminal shell in container", Time: t0,
		Entity: Entity{ContainerID: "a1b2c3d4e5f6"}}
	state := &Event{ID: "ecs-1", Source: SourceECS, Type: "ECS Task State Change", Time: t0.Add(3 * time.Second),
		Entity: Entity{TaskARN: task, TaskDefinitionARN: td}, Containers: []string{"a1b2c3d4e5f6" + "00112233445566778899aabbccddeeff00112233445566778899"}}
	rec := &recorder{}
	_, _, st, err := Replay(context.Background(), func(ctx context.Context, emit func(*Event) error) error {
		if err := emit(alert); err != nil {
			return err
		}
		return emit(state)
	}, rec, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.seen) != 2 || rec.seen[0].ID != "falco-1" {
		t.Fatalf("events seen: %+v", rec.seen)
	}
	if got := rec.seen[0].Entity; got.TaskARN != task || got.TaskDefinitionARN != td || got.Cluster != "prod" {
		t.Fatalf("alert not resolved: %+v", got)
	}
	if n := st.Unresolved[SourceFalco]; n != 0 {
		t.Fatalf("unresolved falco events: %d", n)
	}
}

// preparing records the events it prepared and, as recorder, what
// Process was given.
type preparing struct {
	recorder
	prepared map[string]bool
	mu       sync.Mutex
}

func (p *preparing) Prepare(ev *Event) {
	p.mu.Lock()
	p.prepared[ev.ID] = true
	p.mu.Unlock()
	ev.Prepared = "prep:" + ev.ID
}

// The Runner prepares every event (pipeline.Preparer) before it processes
// it, and Process gets the event's own preparation.
func TestRunnerPreparesEveryEventBeforeProcess(t *testing.T) {
	p := &preparing{prepared: map[string]bool{}}
	const n = 5000
	_, _, _, err := Replay(context.Background(), func(ctx context.Context, emit func(*Event) error) error {
		for i := range n {
			if err := emit(&Event{ID: fmt.Sprintf("e%d", i), Source: SourceCloudTrail, Type: "t", Time: t0.Add(time.Duration(n-i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	}, p, ReplayOptions{Archive: ArchiveOptions{BatchSize: 64}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.seen) != n || len(p.prepared) != n {
		t.Fatalf("%d processed, %d prepared, want %d", len(p.seen), len(p.prepared), n)
	}
	for _, ev := range p.seen {
		if ev.Prepared != "prep:"+ev.ID {
			t.Fatalf("%s processed with Prepared %v", ev.ID, ev.Prepared)
		}
	}
}
