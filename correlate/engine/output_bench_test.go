package engine

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
	"github.com/ecscorr/ecscorr/rules"
)

const builtinFixtures = "../../rules/builtin/fixtures"

// builtinSources are the built-in pack's rule files, without its tests
// and fixtures.
func builtinSources(tb testing.TB) []rule.NamedSource {
	tb.Helper()
	var srcs []rule.NamedSource
	err := fs.WalkDir(rules.Builtin, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" || filepath.Dir(p) != "." || len(p) > 10 && p[len(p)-10:] == "_test.yaml" {
			return err
		}
		b, err := fs.ReadFile(rules.Builtin, p)
		srcs = append(srcs, rule.NamedSource{Name: p, Data: b})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srcs
}

// builtinPack is the built-in pack without its tests and fixtures.
func builtinPack(tb testing.TB) *rule.Set {
	tb.Helper()
	srcs := builtinSources(tb)
	set, diags := rule.Load(srcs, rule.LoadOptions{Now: t0})
	if diags.HasErrors() {
		tb.Fatalf("%v", diags.Errors())
	}
	return set
}

// fixtureEvent decodes and resolves the one record of a built-in fixture.
func fixtureEvent(tb testing.TB, name string) *pipeline.Event {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(builtinFixtures, name))
	if err != nil {
		tb.Fatal(err)
	}
	var evs []*pipeline.Event
	err = format.Decode(data, pipeline.Position{File: name}, func(ev *pipeline.Event) error {
		evs = append(evs, ev)
		return nil
	}, func(e format.RecordError) { tb.Fatalf("%s: %v", name, e) })
	if err != nil || len(evs) != 1 {
		tb.Fatalf("%s: %d events, %v", name, len(evs), err)
	}
	ev := evs[0]
	if err := pipeline.NewResolver(nil, 0).Resolve(context.Background(), ev, ev.Containers...); err != nil {
		tb.Fatal(err)
	}
	return ev
}

// BenchmarkBuiltinIncident is the cost of raising one incident of a
// built-in rule: the events of one firing (a few minutes apart), each lap
// a day and a bit later than the last, so that every lap opens a new
// incident (dedup windows and sequences are at most 24h) rather than
// updating one. ns/incident includes signal evaluation and keying.
func BenchmarkBuiltinIncident(b *testing.B) {
	set := builtinPack(b)
	cases := []struct {
		name  string
		files []string
		rules []string // the rules each lap must fire, once each
	}{
		{"trail_logging_off", []string{"ct-cloudtrail-StopLogging.stratus.json"}, []string{"ecs-drift-cloudtrail-logging-disabled"}},
		{"insights_disabled", []string{"ct-ecs-UpdateClusterSettings-containerInsights-disabled.constructed.json"}, []string{"ecs-drift-container-insights-disabled"}},
		{"role_admin", []string{"ct-iam-AttachRolePolicy-AdministratorAccess.stratus.json"}, []string{"ecs-drift-role-admin-policy"}},
		{"gd_mining", []string{"gd-runtime-CryptoMinerExecuted.constructed.json"}, []string{"ecs-mining-guardduty-finding"}},
		{"reverse_shell", []string{"falco-redirect-stdout-network.constructed.json"}, []string{"ecs-reverse-shell"}},
		// Three events, two reverse-shell incidents (Falco, GuardDuty) and
		// the sequence's, whose earlier steps' records are decoded again.
		{"exec_shell_c2", []string{"ct-ecs-ExecuteCommand.constructed.json", "falco-redirect-stdout-network.constructed.json", "gd-runtime-CnC-B-DNS.constructed.json"},
			[]string{"ecs-reverse-shell", "ecs-exec-reverse-shell-c2"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var tmpl []*pipeline.Event
			for _, f := range c.files {
				tmpl = append(tmpl, fixtureEvent(b, f))
			}
			ctx := context.Background()
			eng, err := New(ctx, set, nil, Options{Ephemeral: true})
			if err != nil {
				b.Fatal(err)
			}
			want := map[string]bool{}
			for _, r := range c.rules {
				want[r] = true
			}
			const lap = 25 * time.Hour
			start := tmpl[0].Time
			evs := make([]pipeline.Event, len(tmpl))
			incidents, laps := 0, 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				for j, t := range tmpl {
					evs[j] = *t
					evs[j].ID = fmt.Sprintf("%s-%d", t.ID, i)
					evs[j].Time = start.Add(time.Duration(i)*lap + time.Duration(j)*time.Minute)
				}
				for j := range evs {
					out, err := eng.Process(ctx, &evs[j])
					if err != nil {
						b.Fatal(err)
					}
					for _, inc := range out {
						if inc.Count != 1 || !want[inc.Rule] {
							b.Fatalf("lap %d: unexpected incident %s of %s (count %d)", i, inc.ID, inc.Rule, inc.Count)
						}
						incidents++
					}
				}
				laps++
			}
			if incidents < laps*len(c.rules) {
				b.Fatalf("%d incidents in %d laps, want %d a lap", incidents, laps, len(c.rules))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(incidents), "ns/incident")
		})
	}
}
