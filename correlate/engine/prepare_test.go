package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// packAndSigma is the built-in pack and the 57 SigmaHQ rules, with (whole)
// a signal on every CloudTrail event type that decodes the whole record.
func packAndSigma(t *testing.T, whole bool) *rule.Set {
	t.Helper()
	srcs := builtinSources(t)
	files, _ := filepath.Glob(filepath.Join(sigmaHQDir, "*.yml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, rule.NamedSource{Name: filepath.Base(f), Data: b})
	}
	if whole {
		srcs = append(srcs, rule.NamedSource{Name: "whole.yaml", Data: []byte(`apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: deletes_by_terraform
    source: cloudtrail
    where: 'event.type startsWith "s3.amazonaws.com:Delete" and raw["userAgent"] contains "Terraform"'
rules:
  - id: deletes-by-terraform
    title: "{{ .event.type }} by Terraform"
    severity: low
    by: [account]
    detect:
      match: {signal: deletes_by_terraform}
`)})
	}
	set, ds := rule.Load(srcs, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		t.Fatal(ds)
	}
	return set
}

// Process gives the same incidents whether an event was prepared, not
// prepared, or prepared by another engine (one since swapped out): with a
// signal that decodes every record whole, and without it, where Sigma-only
// events are prepared lean (projection.lean).
func TestPrepareGivesTheSameIncidents(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(fmt.Sprintf("whole=%v", whole), func(t *testing.T) { testPrepareSame(t, whole) })
	}
}

func testPrepareSame(t *testing.T, whole bool) {
	set := packAndSigma(t, whole)
	evs := invictusEvents(t)
	ctx := context.Background()
	newEngine := func() *Engine {
		e, err := New(ctx, set, memStore(t), Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	other := newEngine()
	lean := 0 // events prepared lean: judged, no projection kept
	run := func(mode string) ([]pipeline.Incident, int) {
		e := newEngine()
		var out []pipeline.Incident
		nPrepared := 0
		for _, orig := range evs {
			ev := *orig
			switch mode {
			case "prepared":
				e.Prepare(&ev)
			case "stale":
				other.Prepare(&ev)
			}
			if ev.Prepared != nil {
				nPrepared++
				if p := ev.Prepared.(*prepared); mode == "prepared" && p.proj == nil && !p.wholeDone && p.judgedSet != nil {
					lean++
				}
			}
			incs, err := e.Process(ctx, &ev)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Prepared != nil {
				t.Fatalf("%s: Process left ev.Prepared set", ev.ID)
			}
			out = append(out, incs...)
		}
		incs, err := e.Advance(ctx, evs[len(evs)-1].Time.Add(30*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return append(out, incs...), nPrepared
	}
	plain, n := run("plain")
	if n != 0 {
		t.Fatalf("%d events prepared without Prepare", n)
	}
	// 114 incidents per copy of the corpus in the x345 bench (39,330 in
	// all), and the Terraform deletes.
	rulesHit := map[string]int{}
	for _, inc := range plain {
		rulesHit[inc.Rule]++
	}
	if (rulesHit["deletes-by-terraform"] == 0) == whole || len(rulesHit) < 10 {
		t.Fatalf("incidents by rule %v: the test needs Sigma hits (and whole decodes with whole)", rulesHit)
	}
	for _, mode := range []string{"prepared", "stale"} {
		got, n := run(mode)
		if mode == "prepared" && (lean == 0) != whole {
			t.Errorf("%d events prepared lean: want none with a whole-record signal on every type, some without", lean)
		}
		if n < 2000 {
			t.Errorf("%s: %d of %d events prepared", mode, n, len(evs))
		}
		if !reflect.DeepEqual(got, plain) {
			t.Errorf("%s: %d incidents differ from the %d of unprepared events", mode, len(got), len(plain))
			for i := range min(len(got), len(plain)) {
				if !reflect.DeepEqual(got[i], plain[i]) {
					t.Errorf("first difference at %d:\n got %+v\nwant %+v", i, got[i], plain[i])
					break
				}
			}
		}
	}
}

// Prepare decodes a record whole for its hit's output, off the goroutine
// that applies events, and only then: the built-in pack's templated rules
// have 36 candidate events among the Invictus records, and only the 19 of
// them that hit a signal whose rule's output reads the record are decoded
// (all 36 were, hit or miss).
func TestPrepareDecodesWholeForHits(t *testing.T) {
	set := builtinPack(t)
	ctx := context.Background()
	e, err := New(ctx, set, memStore(t), Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	nPrepared, whole, hits := 0, 0, 0
	for _, orig := range invictusEvents(t) {
		ev := *orig
		e.Prepare(&ev)
		if ev.Prepared == nil {
			continue
		}
		nPrepared++
		decoded := ev.Prepared.(*prepared).wholeDone
		if decoded {
			whole++
		}
		before := slices.Clone(e.stats.sigHits)
		if _, err := e.Process(ctx, &ev); err != nil {
			t.Fatal(err)
		}
		hit := false
		for i, n := range e.stats.sigHits {
			if n > before[i] && e.sigOutputRaw[i] {
				hit = true
			}
		}
		if hit {
			hits++
		}
		if hit != decoded {
			t.Errorf("%s (%s): a hit whose output reads the record %v, decoded whole by Prepare %v", ev.ID, ev.Type, hit, decoded)
		}
	}
	if nPrepared != 36 || whole != 19 || hits != 19 {
		t.Errorf("prepared %d events, %d decoded whole, %d hits reading the record; want 36, 19, 19", nPrepared, whole, hits)
	}
}
