package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"

	"github.com/ecscorr/ecscorr/internal/testfix"
)

const sigmaHQDir = "../sigma/testdata/aws_cloudtrail"

// invictusEvents decodes the 2,900 Invictus Stratus CloudTrail records
// (sources/archive/testdata/invictus) in time order.
func invictusEvents(tb testing.TB) []*pipeline.Event {
	files, _ := filepath.Glob("../../sources/archive/testdata/invictus/*.json.gz")
	var evs []*pipeline.Event
	d := format.NewDecoder(format.DecoderOptions{Emit: func(ev *pipeline.Event) error { evs = append(evs, ev); return nil }})
	for _, f := range files {
		data := testfix.Gunzip(tb, f)
		d.Decode(data, pipeline.Position{File: f})
	}
	if len(evs) != 2900 {
		tb.Fatalf("%d Invictus events, want 2900", len(evs))
	}
	slices.SortStableFunc(evs, func(a, b *pipeline.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

var (
	sigmaIDLine = regexp.MustCompile(`(?m)^id: .*$`)
	awsHost     = regexp.MustCompile(`\.amazonaws\.com`)
)

// sigmaRuleSet returns n Sigma rules: the first n of the 57 SigmaHQ
// CloudTrail rules, then, past 57, variants of those that require
// eventSource literals, moved to services that do not exist (-v<k>.amazonaws.com)
// under new ids. The variants are real rules the loader indexes like any
// other; they cannot match, so the events they are never offered measure
// what adding rules costs.
func sigmaRuleSet(tb testing.TB, n int) *rule.Set {
	files, _ := filepath.Glob(filepath.Join(sigmaHQDir, "*.yml"))
	if len(files) != 57 {
		tb.Fatalf("%d SigmaHQ rules, want 57", len(files))
	}
	var srcs []rule.NamedSource
	var scoped [][]byte
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if i < n {
			srcs = append(srcs, rule.NamedSource{Name: filepath.Base(f), Data: data})
		}
		if v := variant(data, 0); sourceScoped(tb, v) {
			scoped = append(scoped, data)
		}
	}
	for k := 0; len(srcs) < n; k++ {
		srcs = append(srcs, rule.NamedSource{Name: fmt.Sprintf("variant-%d.yml", k), Data: variant(scoped[k%len(scoped)], k)})
	}
	set, ds := rule.Load(srcs, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		tb.Fatal(ds)
		return nil
	}
	if len(set.Rules) != n {
		tb.Fatalf("%d rules loaded, want %d", len(set.Rules), n)
	}
	return set
}

// variant k of a Sigma rule: a new id, and every AWS service it names
// moved to one that does not exist.
func variant(data []byte, k int) []byte {
	v := sigmaIDLine.ReplaceAll(data, []byte(fmt.Sprintf("id: 00000000-0000-4000-8000-%012x", k)))
	return awsHost.ReplaceAll(v, []byte(fmt.Sprintf("-v%d.amazonaws.com", k)))
}

// sourceScoped reports whether a Sigma rule requires eventSource literals
// (its signal is indexed by them): only such rules make variants that no
// real event is offered.
func sourceScoped(tb testing.TB, data []byte) bool {
	set, ds := rule.Load([]rule.NamedSource{{Name: "v.yml", Data: data}}, rule.LoadOptions{})
	if set == nil || ds.HasErrors() {
		tb.Fatal(ds)
		return false
	}
	s := set.Signals[0]
	return len(s.FoldedTypes) > 0 || len(s.FoldedSources) > 0
}

// The benchmark below is only meaningful if the variants change nothing:
// with 57, 500 or 2,000 rules the same records are kept and the same
// incidents raised.
func TestSigmaVariantsCannotMatch(t *testing.T) {
	evs := invictusEvents(t)
	var want string
	for _, n := range []int{57, 500} {
		set := sigmaRuleSet(t, n)
		e, err := New(context.Background(), set, memStore(t), Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		kept, incs := 0, 0
		for _, ev := range evs {
			if !set.MayMatch(ev.Source, ev.Type, pipeline.RawRecord{Data: ev.Raw}) {
				continue
			}
			kept++
			out, err := e.Process(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			incs += len(out)
		}
		got := fmt.Sprintf("kept %d incidents %d", kept, incs)
		if n == 57 {
			// The golden per-rule counts (correlate/sigma/testdata) sum to
			// 109 matching records on the Invictus run.
			want = got
			if kept != 109 {
				t.Errorf("57 rules: %s, want 109 kept", got)
			}
		} else if got != want {
			t.Errorf("%d rules: %s, want %s (as with the 57)", n, got, want)
		}
	}
}

// BenchmarkSigmaRules is replay's per-record cost after reading (the
// filter on the record's bytes, then the engine for the records kept) with
// 1, 57, 500 and 2,000 Sigma rules over the Invictus records: flat from 57
// up, because the added rules are indexed by the event types they require.
func BenchmarkSigmaRules(b *testing.B) {
	base := invictusEvents(b)
	for _, n := range []int{1, 57, 500, 2000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			set := sigmaRuleSet(b, n)
			e, err := New(context.Background(), set, memStore(b), Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// Each pass over the records is an hour later with new ids,
				// as in the x345 corpus.
				ev := *base[i%len(base)]
				if pass := i / len(base); pass > 0 {
					ev.ID = fmt.Sprintf("%s-%d", ev.ID, pass)
					ev.Time = ev.Time.Add(time.Duration(pass) * time.Hour)
				}
				i++
				if set.MayMatch(ev.Source, ev.Type, pipeline.RawRecord{Data: ev.Raw}) {
					if _, err := e.Process(ctx, &ev); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkSigmaKept is the engine's cost per event replay keeps (those
// MayMatch lets through) with the 57 SigmaHQ rules: as read (the engine
// runs the matchers), prepared ahead (as the Runner does on its reading
// goroutine, here outside the timing), or judged by the reader (its
// verdict with the event, and no record when no rule reads it past the
// match: replay's path). Most of these events raise an incident, so this
// is the cost of a hit. The clock advances every 1,024 events, as the
// Runner's batches move it, so that fired incidents are swept.
func BenchmarkSigmaKept(b *testing.B) {
	set := sigmaRuleSet(b, 57)
	var kept []*pipeline.Event
	for _, ev := range invictusEvents(b) {
		if set.MayMatch(ev.Source, ev.Type, pipeline.RawRecord{Data: ev.Raw}) {
			kept = append(kept, ev)
		}
	}
	for _, mode := range []string{"read", "prepared", "judged"} {
		b.Run(mode, func(b *testing.B) {
			e, err := New(context.Background(), set, memStore(b), Options{Logger: slog.New(slog.DiscardHandler), Ephemeral: true})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			evs := make([]pipeline.Event, b.N)
			for i := range evs {
				ev := *kept[i%len(kept)]
				if pass := i / len(kept); pass > 0 {
					ev.ID = fmt.Sprintf("%s-%d", ev.ID, pass)
					ev.Time = ev.Time.Add(time.Duration(pass) * time.Hour)
				}
				switch mode {
				case "prepared":
					e.Prepare(&ev)
				case "judged":
					v := set.Judge(ev.Source, ev.Type, pipeline.RawRecord{Data: ev.Raw})
					ev.Judged, ev.JudgedBy = v.Matched, v.By
					if v.Matched != nil && !e.RecordNeeded(v.Matched) {
						ev.Raw = nil
					}
					e.Prepare(&ev)
				}
				evs[i] = ev
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range evs {
				if _, err := e.Process(ctx, &evs[i]); err != nil {
					b.Fatal(err)
				}
				if i%1024 == 1023 {
					if _, err := e.Advance(ctx, evs[i].Time); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
