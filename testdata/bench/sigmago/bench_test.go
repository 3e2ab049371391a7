package main

import (
	"context"
	"testing"
)

const invictusDir = "../../../sources/archive/testdata/invictus"

// benchRules loads the 57 rules and the 2,900 Invictus records once per benchmark.
func benchRules(b *testing.B) ([]Rule, []map[string]any) {
	b.Helper()
	recs, err := readRecords([]string{invictusDir})
	if err != nil {
		b.Fatal(err)
	}
	if len(recs) != 2900 {
		b.Fatalf("%d Invictus records, want 2900", len(recs))
	}
	rules, err := loadRules(rulesDir)
	if err != nil {
		b.Fatal(err)
	}
	return rules, recs
}

// BenchmarkSigmaGo57 evaluates every rule with sigma-go on each Invictus
// record, no dispatch: one op is one record over the 57 rules (the five rules
// sigma-go cannot evaluate return their error on every record).
func BenchmarkSigmaGo57(b *testing.B) {
	rules, recs := benchRules(b)
	ctx := context.Background()
	b.ReportAllocs()
	hits := 0
	for i := 0; b.Loop(); i++ {
		rec := recs[i%len(recs)]
		for _, r := range rules {
			if out, err := r.SigmaGo.Matches(ctx, rec); err == nil && out.Match {
				hits++
			}
		}
	}
	_ = hits
}

// BenchmarkEcscorr57 is the same loop with ecscorr's matcher on the same
// records (compare correlate/sigma's BenchmarkMatch57 on the demo records).
func BenchmarkEcscorr57(b *testing.B) {
	rules, recs := benchRules(b)
	b.ReportAllocs()
	hits := 0
	for i := 0; b.Loop(); i++ {
		rec := recs[i%len(recs)]
		for _, r := range rules {
			if r.Ecscorr.Match(rec) {
				hits++
			}
		}
	}
	_ = hits
}
