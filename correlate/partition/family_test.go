package partition

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
)

// The built-in pack's key families, and the 57 SigmaHQ detections (no
// group-by, no dedup): one family each, spread by event id.
func TestDeriveFamilies(t *testing.T) {
	fs := Derive(builtinSet(t))
	got := map[string][]string{}
	for _, f := range fs.List {
		for _, r := range f.Rules {
			got[f.Name] = append(got[f.Name], r.ID)
		}
	}
	want := map[string][]string{
		"entity:account": {"ecs-drift-role-admin-policy"},
		"entity:account,region": {"ecs-drift-container-insights-disabled", "ecs-drift-guardduty-runtime-monitoring-disabled",
			"ecs-drift-risky-task-definition", "ecs-drift-cloudtrail-logging-disabled", "ecs-drift-security-group-open-to-world"},
		"entity:task_arn": {"ecs-mining-cpu-spike-with-miner-signal", "ecs-mining-guardduty-finding", "ecs-mining-falco-and-guardduty",
			"ecs-mining-pool-connections-burst", "ecs-reverse-shell", "ecs-exec-reverse-shell-c2"},
		// Keyed by a task-definition expression: one key space.
		"global": {"ecs-drift-risky-task-definition-runtime-alert"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("families:\n got %v\nwant %v", got, want)
	}

	files, _ := filepath.Glob("../sigma/testdata/aws_cloudtrail/*.yml")
	var srcs []rule.NamedSource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, rule.NamedSource{Name: filepath.Base(f), Data: b})
	}
	set, ds := rule.Load(srcs, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		t.Fatal(ds)
	}
	sf := Derive(set)
	if len(sf.List) != 1 || sf.List[0].Name != FamilyEvent || len(sf.List[0].Rules) != 57 {
		t.Errorf("SigmaHQ families: %s", sf)
	}
}

// A Router fed the copies a Publisher would make gives the incidents one
// engine gives over the same events (no Kafka: one partition).
func TestRouterEqualsOneEngine(t *testing.T) {
	set := builtinSet(t)
	fs := Derive(set)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	rt, err := NewRouter(ctx, set, RouterOptions{Brokers: []string{"unused:9092"}, Topic: "t", Engine: engine.Options{Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	one, err := engine.New(ctx, set, nil, engine.Options{Ephemeral: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	final := func(m map[string]pipeline.Incident, incs []pipeline.Incident) {
		for _, inc := range incs {
			m[inc.ID] = inc
		}
	}
	got, want := map[string]pipeline.Incident{}, map[string]pipeline.Incident{}
	copies := 0
	for _, ev := range demoEvents(t) {
		incs, err := one.Process(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		final(want, incs)
		for _, f := range fs.Fed(set, ev) {
			cp := *ev
			cp.Family = f.Name
			copies++
			incs, err := rt.Process(ctx, &cp)
			if err != nil {
				t.Fatal(err)
			}
			final(got, incs)
		}
	}
	if len(want) != 15 || !reflect.DeepEqual(got, want) {
		t.Errorf("router: %d incidents, one engine: %d (want 15, equal)", len(got), len(want))
	}
	if copies != 689 {
		t.Errorf("%d copies of the demo's events, want 689", copies)
	}
}

// A revoked partition's engines are dropped and its events skipped until
// it is assigned again (then rebuilt: here from nothing, offset 0).
func TestRouterRevokedPartition(t *testing.T) {
	set := builtinSet(t)
	ctx := context.Background()
	rt, err := NewRouter(ctx, set, RouterOptions{Brokers: []string{"unused:9092"}, Topic: "t", Engine: engine.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	fs := Derive(set)
	feed := func(off int64) int {
		n := 0
		for _, ev := range demoEvents(t) {
			for _, f := range fs.Fed(set, ev) {
				cp := *ev
				cp.Family = f.Name
				cp.Pos = pipeline.Position{File: kafkasrc.RecordPos("t", 0, off)}
				off++
				incs, err := rt.Process(ctx, &cp)
				if err != nil {
					t.Fatal(err)
				}
				n += len(incs)
			}
		}
		return n
	}
	rt.Revoked("t", 0)
	if n := feed(0); n != 0 || len(rt.parts) != 0 || rt.Stats().Skipped != 689 {
		t.Fatalf("revoked: %d incidents, %d partitions held, %d skipped", n, len(rt.parts), rt.Stats().Skipped)
	}
	rt.Assigned("t", 0, 0)
	if n := feed(0); n == 0 || len(rt.parts) != 1 {
		t.Fatalf("assigned again: %d incidents, %d partitions held", n, len(rt.parts))
	}
}
