package rule

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind is the detection kind of a rule: exactly one per rule.
type Kind int

// The kinds. A new kind goes before numKinds and into kindSpecs; the
// engine implements it in its own kind registry. Both registries are
// checked by tests against Kinds().
const (
	KindMatch Kind = iota + 1
	KindThreshold
	KindSequence
	KindTemporal
	KindMetric
	numKinds
)

// kindSpec is what the rule package knows of a kind: its key under
// `detect:`, its parser and its part of the compiled summary.
type kindSpec struct {
	name    string
	detect  func(l *loader, c *ruleCtx, body *yaml.Node)
	summary func(b *strings.Builder, r *Rule)
}

// kindSpecs is the closed registry of kinds, indexed by Kind (never
// modified).
var kindSpecs = [numKinds]kindSpec{
	KindMatch:     {"match", (*loader).detectMatch, summaryMatch},
	KindThreshold: {"threshold", (*loader).detectThreshold, summaryThreshold},
	KindSequence:  {"sequence", (*loader).detectSequence, summarySequence},
	KindTemporal:  {"temporal", (*loader).detectTemporal, summaryTemporal},
	KindMetric:    {"metric", (*loader).detectMetric, summaryMetric},
}

// Kinds lists every detection kind, in declaration order.
func Kinds() []Kind {
	out := make([]Kind, 0, numKinds-1)
	for k := KindMatch; k < numKinds; k++ {
		out = append(out, k)
	}
	return out
}

func (k Kind) spec() *kindSpec {
	if k < KindMatch || k >= numKinds {
		return &kindSpec{name: "unknown", summary: func(*strings.Builder, *Rule) {}}
	}
	return &kindSpecs[k]
}

func (k Kind) String() string { return k.spec().name }

func kindNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.spec().name)
	}
	return out
}

func summaryMatch(b *strings.Builder, r *Rule) {
	fmt.Fprintf(b, "  match %s\n", stepString(*r.Match))
}

func summaryThreshold(b *strings.Builder, r *Rule) {
	t := r.Threshold
	if t.Leaky != nil {
		fmt.Fprintf(b, "  threshold %s leaky capacity=%d leakspeed=%s\n", stepString(t.Step), t.Leaky.Capacity, fmtDur(t.Leaky.LeakSpeed))
		return
	}
	ev := ""
	if t.Agg == AggDistinct {
		ev = " evidence=all"
		if t.DistinctEvidence {
			ev = " evidence=distinct"
		}
	}
	fmt.Fprintf(b, "  threshold %s window=%s agg=%s cmp=%s reset=%t%s\n", stepString(t.Step), fmtDur(t.Window),
		[]string{"", "count", "distinct", "sum", "avg"}[t.Agg], cmpString(t.Cmp), t.ResetAfterFire, ev)
}

func summarySequence(b *strings.Builder, r *Rule) {
	q := r.Sequence
	fmt.Fprintf(b, "  sequence maxspan=%s keep_earliest=%t until=[%s]\n", fmtDur(q.MaxSpan), q.KeepEarliest, sigNames(q.Until))
	for _, st := range q.Steps {
		fmt.Fprintf(b, "    step %s\n", stepString(st))
	}
}

func summaryTemporal(b *strings.Builder, r *Rule) {
	t := r.Temporal
	fmt.Fprintf(b, "  temporal window=%s condition=%t\n", fmtDur(t.Window), t.Condition != nil)
	for _, st := range t.Signals {
		fmt.Fprintf(b, "    signal %s\n", stepString(st))
	}
}

func summaryMetric(b *strings.Builder, r *Rule) {
	m := r.Metric
	fmt.Fprintf(b, "  metric series=%s value=%s for=%s baseline=%s/%s/%d reset_on_gap=%t gap=%s\n", m.Series.Name, m.ValueField,
		fmtDur(m.For), []string{"", "p95", "mean", "max"}[m.Baseline.Stat], fmtDur(m.Baseline.Over), m.Baseline.MinSamples,
		m.ResetOnGap, fmtDur(m.Gap))
	if m.Join != nil {
		fmt.Fprintf(b, "    and_then %s\n", stepString(*m.Join))
	}
}
