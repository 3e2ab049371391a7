package main

import (
	"context"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
	"github.com/ecscorr/ecscorr/sources/archive"
)

const demoRecords = 3547 // records in testdata/demo (the summary's "records read")

// BenchmarkReplayDemo is the whole replay command on the demo data: read,
// decode, order, resolve, correlate with the built-in pack, write.
func BenchmarkReplayDemo(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if code := run(context.Background(), []string{"replay", "--quiet", "--out", os.DevNull, "../../testdata/demo"}, io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(demoRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkBuiltinPackProcess is rule evaluation alone: every demo event,
// in order and resolved, through the engine with the full built-in pack.
func BenchmarkBuiltinPackProcess(b *testing.B) {
	ctx := context.Background()
	set, diags := rule.LoadFS(rules.Builtin, rule.LoadOptions{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	var evs []*pipeline.Event
	r := archive.NewReader(archive.Options{})
	if err := r.Read(ctx, []string{"../../testdata/demo"}, func(ev *pipeline.Event) error {
		evs = append(evs, ev)
		return nil
	}, nil); err != nil {
		b.Fatal(err)
	}
	slices.SortStableFunc(evs, func(x, y *pipeline.Event) int { return x.Time.Compare(y.Time) })
	res := pipeline.NewResolver(nil, 0)
	for _, ev := range evs {
		if err := res.Resolve(ctx, ev, ev.Containers...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		eng, err := engine.New(ctx, set, nil, engine.Options{Ephemeral: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range evs {
			if _, err := eng.Process(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
