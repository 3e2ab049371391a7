// Package partition is ecscorr's scale-out on Kafka: the key families the
// loaded rules group events by, the ingest side that publishes each event
// once per family it feeds (keyed so that every event of one key lands in
// one partition), and the correlate side that runs, per partition it owns
// and per family, an engine over that family's rules, rebuilt from the
// partition's retained events when the partition comes to it.
//
// A rule's state lives under its key (its `by:`); all that an engine needs
// to decide a key is every event of that key, in event-time order. So a
// family is a set of rules whose keys all refine one partition key:
//
//   - "entity:<fields>": the rule's entity key fields (task_arn, account and
//     region, task_definition_arn, ...); a rule keyed by entity fields and
//     expressions (a drift rule's cluster) is in its entity fields' family,
//     as the expressions only split a partition key further;
//   - "event": single-event rules without a dedup window and without a
//     resolve (most Sigma detections): any partition will do, so the event
//     id spreads them;
//   - "global": everything else (keys from expressions only, Sigma
//     group-by fields, dedup by a template): one key, one partition;
//   - rules joined by a chain (a Sigma correlation and the rules it reads)
//     share the family of the rule that consumes the chain when they all
//     have it, else "global".
package partition

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/correlate/engine"
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Family names.
const (
	FamilyEvent  = "event"
	FamilyGlobal = "global"
	entityPrefix = "entity:"
)

// Family is one key family: its rules, and how an event's partition key is
// computed for it.
type Family struct {
	Name   string
	Fields []string // entity fields of the key, for entity families
	Rules  []*rule.Rule
	// signals[i] is true when signal index i feeds a rule of the family.
	signals []bool
}

// Families are the key families of a rule set, by name.
type Families struct {
	List   []*Family
	byName map[string]*Family
	byRule map[*rule.Rule]*Family
}

// Get returns the family of that name, or nil.
func (fs *Families) Get(name string) *Family { return fs.byName[name] }

// Of returns a rule's family.
func (fs *Families) Of(r *rule.Rule) *Family { return fs.byRule[r] }

// Derive works out the key families of the set's rules.
func Derive(set *rule.Set) *Families {
	own := map[*rule.Rule]string{}
	for _, r := range set.Rules {
		own[r] = familyOf(r)
	}
	// Chains: a rule producing a derived signal and the rules reading it
	// must see their events in one engine.
	producers := map[*rule.Signal]*rule.Rule{}
	for _, r := range set.Rules {
		if r.Derived != nil {
			producers[r.Derived] = r
		}
	}
	uf := map[*rule.Rule]*rule.Rule{}
	var find func(r *rule.Rule) *rule.Rule
	find = func(r *rule.Rule) *rule.Rule {
		if p, ok := uf[r]; ok && p != r {
			root := find(p)
			uf[r] = root
			return root
		}
		return r
	}
	for _, r := range set.Rules {
		for _, s := range Signals(r) {
			if p := producers[s]; p != nil && p != r {
				uf[find(p)] = find(r)
			}
		}
	}
	comp := map[*rule.Rule][]*rule.Rule{}
	for _, r := range set.Rules {
		root := find(r)
		comp[root] = append(comp[root], r)
	}
	for _, rs := range comp {
		if len(rs) < 2 {
			continue
		}
		name := own[rs[0]]
		for _, r := range rs[1:] {
			if own[r] != name {
				name = FamilyGlobal
			}
		}
		if name == FamilyEvent {
			name = FamilyGlobal // a chain keeps state across events
		}
		for _, r := range rs {
			own[r] = name
		}
	}
	fs := &Families{byName: map[string]*Family{}, byRule: map[*rule.Rule]*Family{}}
	for _, r := range set.Rules {
		name := own[r]
		f := fs.byName[name]
		if f == nil {
			f = &Family{Name: name, signals: make([]bool, len(set.Signals))}
			if fields, ok := strings.CutPrefix(name, entityPrefix); ok {
				f.Fields = strings.Split(fields, ",")
			}
			fs.byName[name] = f
			fs.List = append(fs.List, f)
		}
		f.Rules = append(f.Rules, r)
		fs.byRule[r] = f
		for _, s := range Signals(r) {
			if s != nil && s.Index >= 0 && s.Index < len(f.signals) {
				f.signals[s.Index] = true
			}
		}
	}
	sort.Slice(fs.List, func(i, j int) bool { return fs.List[i].Name < fs.List[j].Name })
	return fs
}

// familyOf is a rule's own family, before chains join families.
func familyOf(r *rule.Rule) string {
	var fields []string
	for _, kf := range r.By {
		if kf.Entity != "" && kf.Expr == nil && kf.Value == nil {
			fields = append(fields, kf.Entity)
		}
	}
	if len(fields) > 0 {
		return entityPrefix + strings.Join(fields, ",")
	}
	if r.Kind == rule.KindMatch && r.Resolve == nil && r.DedupWindow == 0 && r.Derived == nil {
		return FamilyEvent
	}
	return FamilyGlobal
}

// Signals lists the signals a rule reads: its steps', its resolve's, its
// metric series' and join's.
func Signals(r *rule.Rule) []*rule.Signal {
	var out []*rule.Signal
	step := func(st *rule.Step) {
		if st != nil {
			out = append(out, st.Signals...)
		}
	}
	step(r.Match)
	if r.Threshold != nil {
		step(&r.Threshold.Step)
	}
	if r.Sequence != nil {
		for i := range r.Sequence.Steps {
			step(&r.Sequence.Steps[i])
		}
		out = append(out, r.Sequence.Until...)
	}
	if r.Temporal != nil {
		for i := range r.Temporal.Signals {
			step(&r.Temporal.Signals[i])
		}
	}
	if r.Metric != nil {
		if r.Metric.Series != nil {
			out = append(out, r.Metric.Series)
		}
		step(r.Metric.Join)
	}
	if r.Resolve != nil {
		out = append(out, r.Resolve.Signals...)
	}
	return slices.DeleteFunc(out, func(s *rule.Signal) bool { return s == nil })
}

// Fed returns the families the event feeds: those with a rule that reads
// one of its candidate signals (the set's dispatch for its source and
// type). Sigma detections are run on the record (decoded once, when one is
// a candidate), so that an event they cannot match is not published for
// them; other signals count as candidates (a superset: the correlate side
// evaluates them).
func (fs *Families) Fed(set *rule.Set, ev *pipeline.Event) []*Family {
	byType, anyType := set.Candidates(ev.Source, ev.Type)
	if len(byType) == 0 && len(anyType) == 0 {
		return nil
	}
	var raw map[string]any
	decoded := false
	var out []*Family
	for _, f := range fs.List {
	signals:
		for _, g := range [][]*rule.Signal{byType, anyType} {
			for _, s := range g {
				if s.Index < 0 || s.Index >= len(f.signals) || !f.signals[s.Index] {
					continue
				}
				if s.Match != nil {
					if !decoded {
						decoded = true
						_ = pipeline.UnmarshalRecord(ev.Raw, &raw)
					}
					if raw == nil || !s.Match(raw) {
						continue
					}
				}
				out = append(out, f)
				break signals
			}
		}
	}
	return out
}

// Key is the event's partition key in the family.
func (f *Family) Key(ev *pipeline.Event) string {
	switch {
	case f.Name == FamilyEvent:
		return string(ev.Source) + ":" + ev.ID
	case f.Fields != nil:
		env := rule.EntityEnvOf(ev.Entity)
		var b strings.Builder
		for i, field := range f.Fields {
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString(rule.EntityField(&env, field))
		}
		return b.String()
	}
	return ""
}

// String describes the families, for logs.
func (fs *Families) String() string {
	var parts []string
	for _, f := range fs.List {
		parts = append(parts, fmt.Sprintf("%s (%d rules)", f.Name, len(f.Rules)))
	}
	return strings.Join(parts, ", ")
}

// horizon is how far behind the watermark an event can still change the
// rules' state (engine.Engine.Horizon: the longest retention plus the
// lateness), for instances that run no engine over all of them.
func horizon(ctx context.Context, set *rule.Set, lateness time.Duration) (time.Duration, error) {
	e, err := engine.New(ctx, set, nil, engine.Options{Ephemeral: true, Lateness: lateness, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	defer e.Close(ctx)
	return e.Horizon(), nil
}
