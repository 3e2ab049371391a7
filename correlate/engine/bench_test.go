package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// benchRules renders ~40 rules of every kind over CloudTrail, Falco,
// GuardDuty and Container Insights signals.
func benchRules(tb testing.TB) *rule.Set {
	var b strings.Builder
	b.WriteString("apiVersion: ecscorr/v1\nkind: RuleFile\nsignals:\n")
	const nCT = 24
	for i := 0; i < nCT; i++ {
		fmt.Fprintf(&b, `  - name: ct_%d
    source: cloudtrail
    where: 'raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "Op%d" && raw.errorCode == nil'
    fields: {principal: 'string(raw.userIdentity?.arn ?? "")'}
`, i, i)
	}
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "  - name: fa_%d\n    source: falco\n    where: 'raw.rule == \"Rule %d\"'\n    fields: {dest: 'string(raw.output_fields?.[\"fd.sip\"] ?? \"\")'}\n", i, i)
		fmt.Fprintf(&b, "  - name: gd_%d\n    source: guardduty\n    where: 'raw.type == \"Finding%d\"'\n", i, i)
	}
	b.WriteString(`  - name: cpu
    source: container_insights
    types: ["metrics/Task"]
    where: 'raw.Type == "Task" && raw.CpuReserved > 0'
    fields: {value: "raw.CpuUtilized / raw.CpuReserved * 100"}
rules:
`)
	n := 0
	rid := func() string { n++; return fmt.Sprintf("r%02d", n) }
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "  - id: %s\n    severity: medium\n    detect: {match: {signal: ct_%d}}\n    dedup: {window: 1h}\n", rid(), i)
	}
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "  - id: %s\n    severity: high\n    detect:\n      sequence:\n        maxspan: 30m\n        steps:\n          - {signal: ct_%d}\n          - {signal: fa_%d, within: 15m}\n          - {signal: gd_%d}\n    dedup: {window: 1h}\n", rid(), 16+i%8, i, i)
	}
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "  - id: %s\n    severity: low\n    detect:\n      threshold: {signal: fa_%d, window: 10m, distinct: {field: fields.dest, gte: 3}}\n    dedup: {window: 1h}\n", rid(), i)
		fmt.Fprintf(&b, "  - id: %s\n    severity: low\n    by: [account, region]\n    detect:\n      threshold: {signal: ct_%d, window: 5m, count: {gte: 20}}\n    dedup: {window: 1h}\n", rid(), i)
	}
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "  - id: %s\n    severity: high\n    detect:\n      temporal:\n        window: 10m\n        signals: {a: gd_%d, b: fa_%d, c: ct_%d}\n        condition: 'a && b && !c'\n", rid(), i, i, i)
	}
	fmt.Fprintf(&b, "  - id: %s\n    severity: high\n    detect:\n      metric:\n        series: cpu\n        expr: 'value > max(80, baseline * 1.5)'\n        for: 10m\n        baseline: {stat: p95, over: 1d, min_samples: 10}\n        and_then: {within: 15m, any_of: [fa_0, gd_0]}\n    resolve: {metric_clears: true}\n", rid())
	set, diags := rule.Load([]rule.NamedSource{{Name: "bench.yaml", Data: []byte(b.String())}}, rule.LoadOptions{Now: t0})
	if diags.HasErrors() {
		tb.Fatalf("%v", diags.Errors())
	}
	return set
}

var ctNames = []string{"s3.amazonaws.com:GetObject", "sts.amazonaws.com:AssumeRole", "kms.amazonaws.com:Decrypt",
	"ec2.amazonaws.com:DescribeInstances", "ecs.amazonaws.com:DescribeTasks", "logs.amazonaws.com:PutLogEvents"}

// benchEvents is a CloudTrail-heavy mix: 80% CloudTrail (most of it calls
// no rule looks at), 8% Falco, 4% GuardDuty, 8% Container Insights.
func benchEvents(n int) []*pipeline.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	pad := strings.Repeat("x", 900)
	out := make([]*pipeline.Event, 0, n)
	for i := 0; i < n; i++ {
		at := time.Duration(i) * 20 * time.Millisecond
		task := fmt.Sprintf("arn:aws:ecs:eu-west-1:111122223333:task/prod/%04d", rng.IntN(500))
		id := fmt.Sprintf("ev%07d", i)
		var e *pipeline.Event
		switch k := rng.IntN(100); {
		case k < 80:
			if rng.IntN(10) == 0 {
				op := rng.IntN(30)
				raw := fmt.Sprintf(`{"eventSource":"ecs.amazonaws.com","eventName":"Op%d","userIdentity":{"arn":"arn:aws:iam::111122223333:user/u%d"},"requestParameters":{"task":"%s"},"pad":"%s"}`, op, rng.IntN(20), task, pad)
				e = ev(id, ct, fmt.Sprintf("ecs.amazonaws.com:Op%d", op), at, task, raw)
			} else {
				name := ctNames[rng.IntN(len(ctNames))]
				src, op, _ := strings.Cut(name, ":")
				e = ev(id, ct, name, at, "", fmt.Sprintf(`{"eventSource":"%s","eventName":"%s","pad":"%s"}`, src, op, pad))
				e.Entity.Account, e.Entity.Region = "111122223333", "eu-west-1"
			}
		case k < 88:
			r := rng.IntN(10)
			e = ev(id, fa, fmt.Sprintf("Rule %d", r), at, task, fmt.Sprintf(`{"rule":"Rule %d","output_fields":{"fd.sip":"10.0.0.%d"}}`, r, rng.IntN(8)))
		case k < 92:
			f := rng.IntN(10)
			e = ev(id, gd, fmt.Sprintf("Finding%d", f), at, task, fmt.Sprintf(`{"type":"Finding%d"}`, f))
		default:
			e = ev(id, ci, "metrics/Task", at, task, fmt.Sprintf(`{"Type":"Task","CpuReserved":1024,"CpuUtilized":%d}`, rng.IntN(1024)))
		}
		out = append(out, e)
	}
	return out
}

// BenchmarkSignalDispatch: an event no signal can match must cost ~nothing,
// however many rules are loaded.
func BenchmarkSignalDispatch(b *testing.B) {
	e, err := New(context.Background(), benchRules(b), memStore(b), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("no_candidates", func(b *testing.B) {
		x := ev("x", ct, "s3.amazonaws.com:GetObject", 0, "", `{"eventSource":"s3.amazonaws.com"}`)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := e.Process(ctx, x); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("candidate_no_match", func(b *testing.B) {
		x := ev("y", ct, "ecs.amazonaws.com:Op3", 0, taskA, `{"eventSource":"ecs.amazonaws.com","eventName":"Op3","errorCode":"AccessDenied"}`)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Process(ctx, x); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEngineProcess: ~40 rules over a CloudTrail-heavy mix. The
// input repeats, shifted in time, so the engine always moves forward.
func BenchmarkEngineProcess(b *testing.B) {
	set := benchRules(b)
	evs := benchEvents(100_000)
	span := evs[len(evs)-1].Time.Sub(evs[0].Time) + time.Second
	ctx := context.Background()
	e, err := New(ctx, set, memStore(b), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var cur pipeline.Event
	incidents := 0
	// Each lap over evs gets its own event ids: the same ids again would be
	// duplicate deliveries, which rules ignore.
	var lapIDs []string
	lap := -1
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if l := i / len(evs); l != lap {
			b.StopTimer()
			lap, lapIDs = l, make([]string, len(evs))
			for j, ev := range evs {
				lapIDs[j] = fmt.Sprintf("%s-%d", ev.ID, l)
			}
			b.StartTimer()
		}
		cur = *evs[i%len(evs)]
		cur.ID = lapIDs[i%len(evs)]
		cur.Time = cur.Time.Add(time.Duration(i/len(evs)) * span)
		out, err := e.Process(ctx, &cur)
		if err != nil {
			b.Fatal(err)
		}
		incidents += len(out)
		if i%1000 == 999 {
			if _, err := e.Advance(ctx, cur.Time); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(incidents)/float64(b.N), "incidents/event")
}

// BenchmarkCheckpoint measures writing the state of 5,000 keys.
func BenchmarkCheckpoint(b *testing.B) {
	set := benchRules(b)
	evs := benchEvents(50_000)
	ctx := context.Background()
	e, err := New(ctx, set, memStore(b), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range evs {
		if _, err := e.Process(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		e.mu.Lock()
		for _, rt := range e.rules {
			for _, ks := range rt.keys {
				ks.dirty = true
				e.dirtyKeys[ks] = struct{}{}
			}
		}
		n := len(e.dirtyKeys)
		e.mu.Unlock()
		if err := e.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n), "keys")
	}
}
