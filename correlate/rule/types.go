// Package rule is the compiled form of ecscorr rule files: what the loader
// (load.go, check.go) produces from YAML and what the engine
// (correlate/engine) evaluates. The YAML language itself is documented in
// docs/rules.md.
package rule

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/sigma"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Pos is a position in a rule or test file, printed as file:line:col, or
// as the bare path when there is no line (a path that cannot be read).
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Set is a loaded, checked and compiled set of rule files.
type Set struct {
	Signals       []*Signal // Signal.Index is the position in this slice
	SignalsByName map[string]*Signal
	Rules         []*Rule
	// Disabled holds rules with `enabled: false`: checked, never run.
	Disabled []*Rule
	Lists    map[string][]any
	Files    []string

	// dispatch[source] indexes signals by event type so that an event only
	// meets the signals that can match it. Built by BuildIndex.
	dispatch map[pipeline.Source]*sourceIndex
	// plans caches MayMatch's plan per (source, type).
	plans matchPlans
	// fingerprint tells this set's signal numbering from another's
	// (Verdict.By): a digest of the signals' names in Index order.
	fingerprint uint64
}

// Fingerprint identifies the set's signals and their numbering (see
// Judge); set by BuildIndex.
func (s *Set) Fingerprint() uint64 { return s.fingerprint }

type sourceIndex struct {
	byType  map[string][]*Signal
	anyType []*Signal
	// folded indexes signals by lower-cased type (FoldedTypes), by the
	// lower-cased part before the first ':' (FoldedSources) and after it
	// (FoldedNames); merged holds,
	// per exact type seen, byType with those added (bounded).
	foldedType map[string][]*Signal
	foldedSrc  map[string][]*Signal
	foldedName map[string][]*Signal
	mu         sync.RWMutex
	merged     map[string][]*Signal
}

// maxMerged bounds the cache of merged candidate lists per event type (an
// input with endless distinct event names must not grow it forever).
const maxMerged = 1 << 16

// BuildIndex (re)builds the dispatch index from Signals. The loader calls
// it once after compiling.
func (s *Set) BuildIndex() {
	d := xxhash.New()
	for _, sig := range s.Signals {
		d.WriteString(sig.Name)
		d.Write([]byte{0})
	}
	// Never 0, which an unjudged event carries.
	s.fingerprint = d.Sum64() | 1
	s.dispatch = make(map[pipeline.Source]*sourceIndex)
	get := func(src pipeline.Source) *sourceIndex {
		ix := s.dispatch[src]
		if ix == nil {
			ix = &sourceIndex{byType: make(map[string][]*Signal)}
			s.dispatch[src] = ix
		}
		return ix
	}
	for _, sig := range s.Signals {
		srcs := []pipeline.Source{sig.Source}
		if sig.Source == "" {
			srcs = pipeline.Sources
		}
		for _, src := range srcs {
			ix := get(src)
			if sig.Never {
				continue
			}
			if len(sig.FoldedTypes) > 0 || len(sig.FoldedSources) > 0 || len(sig.FoldedNames) > 0 {
				if ix.foldedType == nil {
					ix.foldedType, ix.foldedSrc, ix.foldedName, ix.merged = map[string][]*Signal{}, map[string][]*Signal{}, map[string][]*Signal{}, map[string][]*Signal{}
				}
				for _, t := range sig.FoldedNames {
					ix.foldedName[t] = append(ix.foldedName[t], sig)
				}
				for _, t := range sig.FoldedTypes {
					ix.foldedType[t] = append(ix.foldedType[t], sig)
				}
				for _, t := range sig.FoldedSources {
					ix.foldedSrc[t] = append(ix.foldedSrc[t], sig)
				}
				continue
			}
			if len(sig.Types) == 0 {
				ix.anyType = append(ix.anyType, sig)
				continue
			}
			for _, t := range sig.Types {
				ix.byType[t] = append(ix.byType[t], sig)
			}
		}
	}
}

// Candidates returns the signals that can match an event of this source and
// type, in Index order within each group: first the type-specific ones,
// then those that accept any type. The slices are shared; do not modify.
func (s *Set) Candidates(src pipeline.Source, typ string) (byType, anyType []*Signal) {
	ix := s.dispatch[src]
	if ix == nil {
		return nil, nil
	}
	if ix.foldedType == nil {
		return ix.byType[typ], ix.anyType
	}
	return ix.withFolded(typ), ix.anyType
}

// withFolded is byType[typ] with the signals indexed case-insensitively
// for typ, in Index order.
func (ix *sourceIndex) withFolded(typ string) []*Signal {
	ix.mu.RLock()
	m, ok := ix.merged[typ]
	ix.mu.RUnlock()
	if ok {
		return m
	}
	lower := strings.ToLower(typ)
	src, name, _ := strings.Cut(lower, ":")
	exact, ft, fs, fn := ix.byType[typ], ix.foldedType[lower], ix.foldedSrc[src], ix.foldedName[name]
	if len(ft) == 0 && len(fs) == 0 && len(fn) == 0 {
		m = exact
	} else {
		m = make([]*Signal, 0, len(exact)+len(ft)+len(fs)+len(fn))
		m = append(append(append(append(m, exact...), ft...), fs...), fn...)
		slices.SortFunc(m, func(a, b *Signal) int { return a.Index - b.Index })
		m = slices.Compact(m)
	}
	ix.mu.Lock()
	if len(ix.merged) < maxMerged {
		ix.merged[strings.Clone(typ)] = m // typ may point into a record being read
	}
	ix.mu.Unlock()
	return m
}

// Signal is a stateless single-event match.
type Signal struct {
	Index int
	Name  string
	// Source restricts the signal to one source ("" = any source).
	Source pipeline.Source
	// Types are the exact event types the signal can match; empty means any
	// type of Source. The loader takes them from the signal's `types:` key
	// and, when absent, derives them from top-level `event.type == "x"` /
	// `event.type in [...]` conjuncts of `where`. Dispatch relies on them.
	Types []string
	Where *vm.Program // compiled against Env, returns bool
	// NeedsRaw is true when Where or Fields read `raw`; the engine decodes
	// the raw record only for such signals.
	NeedsRaw bool
	Fields   []NamedExpr // extracted values, compiled against Env
	// Match, when set, is a compiled Go matcher (a Sigma detection) that
	// the engine runs on the decoded raw record instead of Where (which is
	// then nil). MatchFields are the top-level raw keys it reads;
	// MatchFullScan means it reads every value (keyword search), so the
	// whole record must be decoded. NeedsRaw is true.
	Match         func(raw map[string]any) bool
	MatchFields   []string
	MatchFullScan bool
	// MatchPaths, when set, are the key paths Match reads (see
	// sigma.Matcher.KeyPaths): a projection onto them matches as the
	// whole record does, so MayMatch decodes only those.
	MatchPaths [][]string
	// Sigma, when set, is the Sigma detection Match is, and it has a
	// screen: a necessary condition of Match on the record's raw JSON
	// (sigma.Matcher.MayMatchRaw), which MayMatch checks, for all the
	// candidate detections of an event type at once (sigma.ScreenSet),
	// before it decodes anything.
	Sigma *sigma.Matcher
	// FoldedTypes and FoldedSources dispatch a signal case-insensitively
	// (a Sigma detection that requires eventSource and eventName, or only
	// eventSource, literals): lower-cased "source:name" types, or the
	// lower-cased part of a type before its ':'. Never marks a signal no
	// event can match (contradictory literals): it is offered none.
	FoldedTypes   []string
	FoldedSources []string
	FoldedNames   []string // lower-cased part of a type after its ':'
	Never         bool
	// Sample lets the signal match GuardDuty sample findings; by default
	// the engine never offers sample findings to signals.
	Sample bool
	Pos    Pos

	vms sync.Pool // of *vm.VM, reused across Eval calls
}

// Eval reports whether the signal matches the event in env. GuardDuty sample
// findings (env.Event.Sample) never match unless the signal sets Sample.
// Safe for concurrent use; a caller with its own goroutine-local state can
// use an Evaluator instead.
func (s *Signal) Eval(env *Env) (bool, error) {
	if env.Event.Sample && !s.Sample {
		return false, nil
	}
	if s.Match != nil {
		return env.Raw != nil && s.Match(env.Raw), nil
	}
	m, _ := s.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	out, err := m.Run(s.Where, env)
	s.vms.Put(m)
	if err != nil {
		return false, fmt.Errorf("signal %s: %w", s.Name, err)
	}
	b, _ := out.(bool)
	return b, nil
}

// EvalFields evaluates the signal's fields in order into dst (allocated
// when nil) and returns it. While evaluating, env.Fields is dst, so a field
// can read the ones before it; env.Fields is left set to dst.
func EvalFields(s *Signal, env *Env, dst map[string]any) (map[string]any, error) {
	if len(s.Fields) == 0 {
		return dst, nil
	}
	if dst == nil {
		dst = make(map[string]any, len(s.Fields))
	}
	env.Fields = dst
	m, _ := s.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	defer s.vms.Put(m)
	for _, f := range s.Fields {
		v, err := m.Run(f.Prog, env)
		if err != nil {
			return dst, fmt.Errorf("signal %s field %s: %w", s.Name, f.Name, err)
		}
		dst[f.Name] = v
	}
	return dst, nil
}

// Evaluator runs compiled programs with one reused VM; not safe for
// concurrent use (keep one per goroutine).
type Evaluator struct{ vm vm.VM }

// Run runs any compiled program (key exprs, exception fields, output
// fields) against env.
func (e *Evaluator) Run(p *vm.Program, env any) (any, error) { return e.vm.Run(p, env) }

// Bool runs a bool program; a non-bool result is false.
func (e *Evaluator) Bool(p *vm.Program, env any) (bool, error) {
	out, err := e.vm.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Signal is Signal.Eval with this Evaluator's VM.
func (e *Evaluator) Signal(s *Signal, env *Env) (bool, error) {
	if env.Event.Sample && !s.Sample {
		return false, nil
	}
	if s.Match != nil {
		return env.Raw != nil && s.Match(env.Raw), nil
	}
	return e.Bool(s.Where, env)
}

// NamedExpr is a compiled expression with a name (signal fields, output
// fields).
type NamedExpr struct {
	Name string
	Prog *vm.Program
	Src  string
}

// Env is what signal `where` and `fields`, `by` expressions and exception
// fields are evaluated against. The loader compiles with expr.Env(Env{}).
type Env struct {
	Event  EventEnv         `expr:"event"`
	Entity EntityEnv        `expr:"entity"`
	Raw    map[string]any   `expr:"raw"`
	Lists  map[string][]any `expr:"lists"`
	// Fields holds the signal's extracted fields (empty while evaluating
	// the fields themselves); threshold `field:` expressions read it.
	Fields map[string]any `expr:"fields"`
	// Steps holds the earlier steps (StepData maps by alias) while a step
	// `where` is evaluated; nil otherwise.
	Steps map[string]any `expr:"steps"`
}

// EventEnv exposes the normalised event to expressions as `event.*`.
type EventEnv struct {
	ID       string    `expr:"id"`
	Source   string    `expr:"source"`
	Type     string    `expr:"type"`
	Time     time.Time `expr:"time"`
	Severity string    `expr:"severity"`
	Sample   bool      `expr:"sample"`
}

// EntityEnv exposes pipeline.Entity as `entity.*`.
type EntityEnv struct {
	Account           string `expr:"account"`
	Region            string `expr:"region"`
	Cluster           string `expr:"cluster"`
	Service           string `expr:"service"`
	TaskARN           string `expr:"task_arn"`
	TaskDefinitionARN string `expr:"task_definition_arn"`
	// TaskDefinitionFamily is derived from TaskDefinitionARN.
	TaskDefinitionFamily string `expr:"task_definition_family"`
	ContainerID          string `expr:"container_id"`
	Principal            string `expr:"principal"`
}

// KeyField is one part of a rule's `by:` grouping key. Either Entity names
// an entity field (task_arn, account, region, cluster, service, principal,
// task_definition_arn, task_definition_family, container_id) or Expr is an
// expression over Env (e.g. raw.userIdentity.arn). Name is the key's name
// in Incident.Key.
type KeyField struct {
	Name   string
	Entity string
	Expr   *vm.Program
	// ReadsFields is set when Expr reads `fields` (or Value depends on the
	// signal): the engine then computes the key per matched signal, with
	// that signal's fields. Expr may return a list: the event joins once
	// per element.
	ReadsFields bool
	// Value, when set, replaces Entity and Expr with Go code (Sigma
	// group-by fields): the key part's distinct values for the event (sig
	// is the matched signal when ReadsFields is set, else nil). Several
	// values fan out as a list does; none means the event lacks the field
	// and joins no key of the rule (counted in NoKey).
	Value func(sig *Signal, env *Env) []string
}

// Step is one signal reference: a match, a threshold input, a sequence
// step, a metric join.
type Step struct {
	As      string    // alias for templates (.steps.<as>) and evidence
	Signals []*Signal // `signal:` or `any_of:`; an event matching any of them matches the step
	// Within bounds the gap from the previous step (sequence) or the
	// distance from the metric breach (metric join); 0 = unbounded.
	Within time.Duration
	// MinCount repeats the step (EQL `with runs`); 0 and 1 mean once.
	MinCount int
	// Absent makes this a negative step: it matches when no such event
	// occurs between its neighbours, or, for a last step, during For after
	// the previous step (decided when the watermark passes the deadline).
	Absent bool
	For    time.Duration
	// Where optionally narrows the step with an expression over the step
	// event (Env) plus `steps` (earlier steps as in OutputEnv); nil = none.
	Where *vm.Program
}

// AggKind is a threshold aggregate.
type AggKind int

const (
	AggCount AggKind = iota + 1
	AggDistinct
	AggSum
	AggAvg
	// AggPercentile (Sigma value_percentile) is decided per window close:
	// each distinct value's share of the window's events, in percent; the
	// rule fires when some value's share satisfies Cmp (Threshold.Close).
	AggPercentile
)

// Cmp is a numeric condition; several ops may be combined (a range).
type Cmp struct {
	GT, GTE, LT, LTE, EQ *float64
	NEQ                  *float64 // Sigma correlations' neq
}

// LowerBoundsOnly reports whether only gt/gte are set: over a growing
// window of counts the condition, once true, stays true.
func (c Cmp) LowerBoundsOnly() bool {
	return c.LT == nil && c.LTE == nil && c.EQ == nil && c.NEQ == nil
}

// Holds reports whether v satisfies every op that is set.
func (c Cmp) Holds(v float64) bool {
	if c.GT != nil && !(v > *c.GT) {
		return false
	}
	if c.GTE != nil && !(v >= *c.GTE) {
		return false
	}
	if c.LT != nil && !(v < *c.LT) {
		return false
	}
	if c.LTE != nil && !(v <= *c.LTE) {
		return false
	}
	if c.EQ != nil && v != *c.EQ {
		return false
	}
	if c.NEQ != nil && v == *c.NEQ {
		return false
	}
	return true
}

// Threshold fires when the aggregate over the sliding window of Step's
// events satisfies Cmp.
type Threshold struct {
	Step   Step
	Window time.Duration
	Agg    AggKind
	// Field is the value aggregated by distinct/sum/avg, over Env (with
	// Fields set); nil for count.
	Field *vm.Program
	Cmp   Cmp
	// ResetAfterFire clears the window when the rule fires (default true).
	ResetAfterFire bool
	// Leaky, when set, replaces the sliding window and the aggregate by a
	// leaky bucket (Agg is AggCount, Window is Capacity × LeakSpeed: the
	// time a full bucket takes to drain).
	Leaky *Leaky
	// DistinctEvidence keeps one evidence event per distinct value (the
	// earliest in the window) for AggDistinct; the default for distinct.
	DistinctEvidence bool
	// Value, when set, replaces Field with Go code (Sigma correlation
	// fields): the string aggregated by distinct and percentile, or the
	// number by sum and avg (sig is the matched signal); ok false means
	// the event has no usable value and is not aggregated (not counted).
	Value func(sig *Signal, env *Env) (s string, f float64, ok bool)
	// Close decides Cmp when a window closes instead of as soon as it
	// holds, for conditions that later events could undo (an upper bound,
	// eq, neq; percentiles): a window opens at a key's first event, holds
	// the events in [first, first+Window), and is decided once the clock
	// passes its end; the next window opens at the next event.
	Close bool
}

// Leaky is a CrowdSec-style leaky bucket on event time: each event pours
// one unit, the bucket drains one unit every LeakSpeed (continuously), and
// it overflows (fires) when an event would make it hold more than Capacity.
type Leaky struct {
	Capacity  int
	LeakSpeed time.Duration
}

// Sequence fires when Steps occur in order on the same key within MaxSpan.
type Sequence struct {
	MaxSpan time.Duration
	Steps   []Step
	// Until cancels a partial match when one of these occurs between steps.
	Until []*Signal
	// KeepEarliest keeps the earliest partial match per step instead of the
	// latest (EQL keeps the latest).
	KeepEarliest bool
}

// Temporal fires when Condition over which aliases fired holds within Window.
type Temporal struct {
	Window  time.Duration
	Signals []Step // Step.As is the alias used in Condition
	// Condition is compiled against map[string]any{alias: bool, ...,
	// "count_fired": int}; nil means all aliases must fire.
	Condition *vm.Program
}

// BaselineStat is how a metric baseline is summarised.
type BaselineStat int

const (
	BaselineP95 BaselineStat = iota + 1
	BaselineMean
	BaselineMax
)

// Metric fires when Expr holds for every sample of Series during For.
type Metric struct {
	Series     *Signal // its field named ValueField (default "value") is the sample value
	ValueField string
	// Expr is compiled against MetricEnv and returns bool.
	Expr *vm.Program
	For  time.Duration
	// Baseline is learned per key from samples for which Expr is false.
	Baseline struct {
		Stat       BaselineStat
		Over       time.Duration
		MinSamples int
	}
	// ResetOnGap: a gap longer than Gap between samples restarts the `for`
	// clock (default gap: 3 × the usual sample interval, 3m when unknown).
	ResetOnGap bool
	Gap        time.Duration
	// Join, when set, requires an event of Join.Signals on the same key
	// within Join.Within before or after the breach.
	Join *Step
}

// MetricEnv is what Metric.Expr sees.
type MetricEnv struct {
	Value    float64 `expr:"value"`
	Baseline float64 `expr:"baseline"` // 0 until MinSamples samples are seen
	Samples  int     `expr:"samples"`  // baseline sample count
}

// Resolve closes open incidents of the rule on the same key.
type Resolve struct {
	Signals      []*Signal
	MetricClears bool
	// Closes filters which open incidents a resolving event closes;
	// compiled against OutputEnv plus `event` (the resolving event as a
	// step map); nil = all.
	Closes        *vm.Program
	KeepFiringFor time.Duration
}

// Exception suppresses a hit when, for one row of Values, every field
// compares true. Expired exceptions no longer apply (and `rules check`
// warns about them).
type Exception struct {
	Name    string
	Fields  []*vm.Program // over Env of the matching event (for sequences: the last step's event)
	Comps   []string      // "==", "!=", "in", "startsWith", "endsWith", "contains"
	Values  [][]any
	Reason  string
	Expires time.Time
	Pos     Pos
}

// SeverityOverride raises (or lowers) the severity when When holds.
type SeverityOverride struct {
	When     *vm.Program // over OutputEnv
	Severity pipeline.Severity
}

// Rule is a compiled correlation rule.
type Rule struct {
	ID          string
	TitleSrc    string // the title template's text
	Description string
	Status      string
	Severity    pipeline.Severity
	Overrides   []SeverityOverride
	Tags        []string
	Mitre       []string
	// Origin is "sigma" for a rule loaded from a Sigma file, "" for an
	// ecscorr rule. Author, References and FalsePositives are the Sigma
	// rule's (kept as the Detection Rule License asks for authors).
	Origin         string
	Author         string
	References     []string
	FalsePositives []string
	// By is the grouping key; empty means no key: every hit is its own
	// group (Sigma rules, which must not drop events lacking an entity).
	By []KeyField

	Kind      Kind
	Match     *Step
	Threshold *Threshold
	Sequence  *Sequence
	Temporal  *Temporal
	Metric    *Metric

	Resolve    *Resolve
	Exceptions []Exception

	// Derived, when set, is the signal fed with a derived hit each time
	// the rule fires (a Sigma correlation that another one refers to):
	// the engine offers it, never raw events, to the rules that use it,
	// with the triggering event's time, raw record and entity and the
	// incident's id. Silent rules fire without raising incidents (a Sigma
	// rule referred to by correlations without `generate: true`).
	Derived *Signal
	Silent  bool

	// Templates are executed with OutputEnv converted to a map (see
	// OutputData) so that authors write {{ .steps.exec.raw.eventName }}.
	Title, Summary, Remediation *template.Template
	Runbook                     string
	Fields                      []NamedExpr // over OutputEnv
	MaxEvents                   int         // evidence cap per incident (default 50)

	// DedupKey renders the dedup key (nil: rule id + by-key values);
	// DedupWindow is how long repeats update the open incident (0: each
	// hit opens a new incident).
	DedupKey    *template.Template
	DedupWindow time.Duration
	Route       []string

	// MaxKeys caps the number of keys holding state for this rule
	// (default 100,000); overflow is counted, never silent.
	MaxKeys int
	// Retention is how long state for a key may be needed: the longest
	// window/maxspan/for of the rule (state TTL adds the lateness).
	Retention time.Duration
	// Hash identifies the detect section; state survives a reload only if
	// it is unchanged.
	Hash string
	Pos  Pos

	// fast holds the compiled forms of the loader's templates above (see
	// tmplfast.go); a template not in it runs on text/template.
	fast map[*template.Template]*fastTemplate
}

// OutputEnv is what severity overrides, output fields, resolve filters and
// templates see. Expressions compile against expr.Env(map[string]any) of
// OutputData's shape.
//
//	rule:   {id, description}
//	key:    {<by name>: value}
//	entity: EntityEnv fields of the last evidence event (snake_case)
//	steps:  {<as>: {signal, source, type, id, time, raw, fields, entity}}
//	agg:    {count, distinct, sum, avg, value, baseline, for}
//	signals: {<signal or alias>: bool} (which fired: temporal, any_of)
//	count:  number of hits folded into the incident
type OutputEnv = map[string]any
