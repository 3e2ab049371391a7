// Package engine evaluates compiled rules (correlate/rule) over a stream of
// normalised events in event-time order and produces incidents. Hot state
// lives in memory; Checkpoint writes what changed to the state store in one
// batch. See correlate/README.md for windows, watermarks and determinism.
package engine

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Options configures an Engine.
type Options struct {
	Logger *slog.Logger
	// MaxEvidence is the evidence cap for rules that do not set one
	// (Rule.MaxEvents); 0 means 50.
	MaxEvidence int
	// Lateness is added to state TTLs in the store.
	Lateness time.Duration
	// Ephemeral runs without a store: nothing is loaded or checkpointed.
	// Replay uses it when no --state is kept, as the state would be thrown
	// away; the engine holds its live state in memory either way. With a
	// MemoryBudget, an ephemeral engine may still be given a (temporary)
	// store: it then only holds evicted key states.
	Ephemeral bool
	// MemoryBudget bounds the estimated bytes of key state held in memory
	// (0: no bound). Past it, the least recently used key states are
	// evicted to the store and read back on their next event or timer; it
	// needs a store. Incidents do not depend on it. See budget.go.
	MemoryBudget int64
	// Only, when set, restricts the engine to the rules it reports true
	// for: the others are never offered an event (a scale-out correlate
	// instance runs one engine per key family, correlate/partition).
	Only func(r *rule.Rule) bool
}

// Engine is the correlation engine. Its methods are safe for concurrent
// use, but events must be given in event-time order.
type Engine struct {
	mu sync.Mutex
	// literals are the texts of templates without actions (render).
	literals map[*template.Template]string
	set      *rule.Set
	st       *state.Store
	opts     Options
	log      *slog.Logger
	rules    []*ruleRT
	byID     map[string]*ruleRT
	// sigRoles[signal index] lists the rule roles a signal plays.
	sigRoles [][]roleRef
	// eager[rule index]: the rule's result does not depend on event order
	// (a single-event match without resolve), so ProcessEager may apply
	// it on arrival; sigEager[signal index] counts the eager rules among
	// the signal's roles.
	eager    []bool
	sigEager []int
	// sigRawFree[signal index]: a hit needs no record (rawFree);
	// sigOutputRaw: a hit decodes it whole (outputReadsRecord).
	sigRawFree, sigOutputRaw []bool
	// sigEntityFree[signal index]: its where reads no entity, which the
	// Runner resolves after Prepare: Prepare may judge it (prepare.go).
	sigEntityFree []bool
	// phase is the pass over the current event: phaseAll, phaseEager
	// (eager rules only) or phaseRest (all but the eager rules).
	phase phase

	wm        time.Time // last watermark given to Advance
	clock     time.Time // max(watermark, latest event time): drives timers
	lastSweep time.Time
	incSeq    uint64

	timers timerHeap

	incidents map[string]*openInc // open incidents by id
	incExp    incHeap             // the same, soonest Expire first
	dedup     map[string]string   // rule id \x00 dedup key → incident id

	// dirty state to write at the next checkpoint
	dirtyKeys map[*keyState]struct{}
	// changedKeys wait for their expiry to be refreshed (expiry.go)
	changedKeys []*keyState
	// durable: state is loaded from and checkpointed to st
	durable bool
	// memory budget (budget.go)
	lru          lruList
	memUsed      int64
	unsyncedKeys []*keyState // written by a checkpoint not yet Committed
	spillDead    [][]byte    // scratch copies of dropped keys, to delete
	deadKeys     [][]byte
	dirtyIncs    map[string]struct{}
	deadIncs     []string
	deadDedups   [][]byte
	wmDirty      bool

	// per-event scratch, reused
	env     rule.Env
	vm      vm.VM
	ev      *pipeline.Event
	rawDone bool // the whole raw record is decoded in env.Raw
	rawProj bool // env.Raw holds a projection (some top-level keys)
	// sigProj is each signal's raw projection; projCache the union per
	// event type (see project.go).
	sigProj    []projection
	ruleProj   []projection
	projCache  sync.Map  // string → projection
	scratch    sync.Pool // *pipeline.ProjScratch, for lean Prepare
	projCached atomic.Int64
	prep       *prepared // the current event's, when it was prepared
	hits       []sigHit
	rh         ruleHits // processRule's, reused
	touched    []int
	mark       []uint64
	gen        uint64
	out        []pipeline.Incident

	stats stats
	chain chainState // derived hits of chained rules (chain.go)
	// savedMeta is the meta record last written (CheckpointBatch).
	savedMeta []byte
}

type sigHit struct {
	sig    *rule.Signal
	fields map[string]any
	rec    *evRec // built lazily
}

type phase uint8

const (
	phaseAll phase = iota
	phaseEager
	phaseRest
)

type roleKind uint8

const (
	roleStep    roleKind = iota + 1 // match/threshold/sequence/temporal step, Step index
	roleUntil                       // sequence until
	roleResolve                     // resolve signal
	roleSeries                      // metric series
	roleJoin                        // metric and_then
)

type roleRef struct {
	rule int
	kind roleKind
	step int
}

// New builds an engine for set and loads state from st (which may be an
// in-memory store). State of rules whose detect hash changed is dropped.
func New(ctx context.Context, set *rule.Set, st *state.Store, opts Options) (*Engine, error) {
	if set == nil {
		return nil, fmt.Errorf("engine: nil rule set")
	}
	if st == nil && !opts.Ephemeral {
		return nil, fmt.Errorf("engine: nil state store (set Options.Ephemeral to run without one)")
	}
	if st == nil && opts.MemoryBudget > 0 {
		return nil, fmt.Errorf("engine: a memory budget needs a store to evict to (a temporary one will do)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxEvidence <= 0 {
		opts.MaxEvidence = 50
	}
	e := &Engine{
		set:       set,
		st:        st,
		opts:      opts,
		log:       opts.Logger,
		incidents: make(map[string]*openInc),
		dedup:     make(map[string]string),
		dirtyKeys: make(map[*keyState]struct{}),
		dirtyIncs: make(map[string]struct{}),
		sigRoles:  make([][]roleRef, len(set.Signals)),
		durable:   st != nil && !opts.Ephemeral,
	}
	if st != nil && opts.MemoryBudget > 0 {
		if err := dropSpill(st); err != nil {
			return nil, err
		}
	}
	e.env.Lists = set.Lists
	e.stats.init(set)
	e.byID = make(map[string]*ruleRT, len(set.Rules))
	for i, r := range set.Rules {
		rt := newRuleRT(i, r, opts)
		e.rules = append(e.rules, rt)
		e.byID[r.ID] = rt
		skip := opts.Only != nil && !opts.Only(r)
		add := func(sigs []*rule.Signal, role roleKind, step int) {
			if skip {
				return
			}
			for _, s := range sigs {
				if s == nil || s.Index < 0 || s.Index >= len(e.sigRoles) {
					continue
				}
				e.sigRoles[s.Index] = append(e.sigRoles[s.Index], roleRef{rule: i, kind: role, step: step})
			}
		}
		if rt.kind == nil {
			return nil, e.unknownKind(r)
		}
		rt.kind.init(e, rt, add)
		if r.Resolve != nil {
			add(r.Resolve.Signals, roleResolve, 0)
		}
	}
	e.mark = make([]uint64, len(e.rules))
	e.eager = make([]bool, len(e.rules))
	e.sigEager = make([]int, len(set.Signals))
	for i, rt := range e.rules {
		e.eager[i] = rt.r.Kind == rule.KindMatch && rt.r.Resolve == nil
	}
	for si, rrs := range e.sigRoles {
		for _, rr := range rrs {
			if e.eager[rr.rule] {
				e.sigEager[si]++
			}
		}
	}
	e.sigRawFree = make([]bool, len(set.Signals))
	e.sigOutputRaw = make([]bool, len(set.Signals))
	e.sigEntityFree = make([]bool, len(set.Signals))
	for _, sig := range set.Signals {
		e.sigEntityFree[sig.Index] = sig.Match == nil && sig.Where != nil && !readsEntity(sig.Where)
		e.sigRawFree[sig.Index] = e.rawFree(sig)
		e.sigOutputRaw[sig.Index] = e.outputReadsRecord(sig)
	}
	e.sigProj = make([]projection, len(set.Signals))
	for _, sig := range set.Signals {
		e.sigProj[sig.Index] = signalProjection(sig)
	}
	e.ruleProj = make([]projection, len(e.rules))
	for i, rt := range e.rules {
		e.ruleProj[i] = ruleProjection(rt.r)
	}
	if err := e.load(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Process evaluates one event and returns the incidents it opened, updated
// or resolved (each in full; consumers upsert by ID).
func (e *Engine) Process(ctx context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() { ev.Prepared = nil }() // taken: let it go with the event
	e.stats.events++
	if !e.wm.IsZero() && ev.Time.Before(e.wm) {
		e.stats.late++
	}
	e.out = nil
	// Events come in event-time order, so everything due strictly before
	// this event can be decided now: results do not depend on how often
	// Advance is called.
	if len(e.timers) > 0 && e.timers[0].at.Before(ev.Time) {
		e.runTimers(ev.Time)
	}
	if ev.Time.After(e.clock) {
		e.clock = ev.Time
	}
	byType, anyType := e.set.Candidates(ev.Source, ev.Type)
	if len(byType) == 0 && len(anyType) == 0 {
		e.enforceBudget()
		return e.out, nil
	}
	e.phase = phaseAll
	if ev.Eager {
		e.phase = phaseRest
	}
	e.evaluate(ev, byType, anyType)
	return e.out, nil
}

// evaluate runs the current phase's signals and rules over ev.
func (e *Engine) evaluate(ev *pipeline.Event, byType, anyType []*rule.Signal) {
	e.ev = ev
	e.hits = e.hits[:0]
	e.rawDone = false
	e.rawProj = false
	e.prep, _ = ev.Prepared.(*prepared)
	if e.prep != nil && e.prep.e != e {
		e.prep = nil // prepared for another engine (since swapped out)
	}
	if e.prep == nil && len(ev.Raw) == 0 {
		e.prep = e.judgedPrep(ev) // judged by the reader, record not kept
	}
	e.setEnv(ev)
	e.projectRaw(ev, byType, anyType)
	e.evalSignals(byType)
	e.evalSignals(anyType)
	if len(e.hits) > 0 {
		e.dispatch()
		e.flushExpiry()
		e.drainDerived()
	}
	e.ev = nil
	e.prep = nil
	e.env.Raw = nil
	e.env.Fields = nil
	e.enforceBudget()
}

// EagerCandidate reports whether some rule whose result does not depend on
// event order (a single-event match) could match ev, so that ProcessEager
// is worth calling on arrival.
func (e *Engine) EagerCandidate(ev *pipeline.Event) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	byType, anyType := e.set.Candidates(ev.Source, ev.Type)
	for _, g := range [][]*rule.Signal{byType, anyType} {
		for _, sig := range g {
			if e.sigEager[sig.Index] > 0 {
				return true
			}
		}
	}
	return false
}

// ProcessEager applies ev, on arrival and ahead of event-time order, to
// the rules whose result does not depend on order (single-event matches
// without resolve): live mode fires those at once instead of waiting for
// the watermark. It runs no timers and moves no clock. The caller then
// sets ev.Eager and gives ev to Process in order as usual, which applies
// the other rules only.
func (e *Engine) ProcessEager(ctx context.Context, ev *pipeline.Event) ([]pipeline.Incident, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out = nil
	byType, anyType := e.set.Candidates(ev.Source, ev.Type)
	if len(byType) == 0 && len(anyType) == 0 {
		return nil, nil
	}
	e.phase = phaseEager
	e.evaluate(ev, byType, anyType)
	e.phase = phaseAll
	return e.out, nil
}

func (e *Engine) setEnv(ev *pipeline.Event) {
	e.env.Event = rule.EventEnv{ID: ev.ID, Source: string(ev.Source), Type: ev.Type, Time: ev.Time, Severity: ev.Severity.String(), Sample: ev.Sample}
	e.env.Entity = rule.EntityEnvOf(ev.Entity)
	e.env.Raw = nil
	e.env.Fields = nil
}

// projectRaw decodes only the top-level raw keys that the event's
// candidate signals read, when they can be known (see project.go).
func (e *Engine) projectRaw(ev *pipeline.Event, groups ...[]*rule.Signal) {
	if e.prep != nil {
		if e.prep.rawProj {
			e.env.Raw, e.rawProj = e.prep.proj, true
		}
		return
	}
	if m, ok := e.project(ev, groups...); ok {
		e.env.Raw = m
		e.rawProj = true
	}
}

// project decodes the keys (and the nested members matchers read) that
// the candidate signals of ev read, when they can be known; false when the
// record must be decoded whole, or has nothing to decode. Safe for
// concurrent use (Prepare calls it).
func (e *Engine) project(ev *pipeline.Event, groups ...[]*rule.Signal) (map[string]any, bool) {
	return e.eventProjection(ev.Source, ev.Type, groups...).project(ev.Raw)
}

// project decodes p of raw (see Engine.project).
func (p projection) project(raw []byte) (map[string]any, bool) {
	if p.full || len(p.keys) == 0 || len(raw) == 0 {
		return nil, false
	}
	return p.pp.Project(raw)
}

// ensureRaw decodes the current event's whole raw record once.
func (e *Engine) ensureRaw() {
	if e.rawDone {
		return
	}
	e.rawDone = true
	e.rawProj = false
	if e.prep != nil && e.prep.wholeDone {
		e.env.Raw = e.prep.whole
	} else {
		e.env.Raw = decodeRaw(e.ev.Raw)
	}
	if e.env.Raw == nil && len(e.ev.Raw) > 0 {
		e.stats.rawErrors++
	}
}

func decodeRaw(b []byte) map[string]any {
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	if err := pipeline.UnmarshalRecord(b, &m); err != nil {
		return nil
	}
	return m
}

func (e *Engine) evalSignals(sigs []*rule.Signal) {
	for _, sig := range sigs {
		if e.ev.Sample && !sig.Sample {
			continue
		}
		if len(e.sigRoles[sig.Index]) == 0 {
			continue // no enabled rule uses it
		}
		switch n := e.sigEager[sig.Index]; {
		case e.phase == phaseEager && n == 0, e.phase == phaseRest && n == len(e.sigRoles[sig.Index]):
			continue // no rule of this pass uses it
		}
		// A matcher or condition Prepare judged needs no record here (a
		// lean Prepare kept none); its fields, on a hit, do.
		judged := e.prep != nil && e.prep.judged(sig)
		if sig.NeedsRaw && !e.rawProj && !judged {
			e.ensureRaw()
		}
		e.env.Fields = nil
		if judged {
			if !e.prep.matched(sig) {
				continue
			}
		} else if sig.Match != nil {
			if e.env.Raw == nil || !sig.Match(e.env.Raw) {
				continue
			}
		} else if sig.Where != nil {
			ok, err := e.runBool(sig.Where, &e.env)
			if err != nil {
				e.stats.evalErrors++
				e.logOnce("signal:"+sig.Name, "signal evaluation failed", "signal", sig.Name, "event", e.ev.ID, "err", err)
				continue
			}
			if !ok {
				continue
			}
		}
		var fields map[string]any
		if len(sig.Fields) > 0 {
			if sig.NeedsRaw && !e.rawProj {
				e.ensureRaw()
			}
			fields = make(map[string]any, len(sig.Fields))
			e.env.Fields = fields
			for _, f := range sig.Fields {
				v, err := e.vm.Run(f.Prog, &e.env)
				if err != nil {
					e.stats.evalErrors++
					e.logOnce("field:"+sig.Name+"."+f.Name, "signal field evaluation failed", "signal", sig.Name, "field", f.Name, "err", err)
					continue
				}
				fields[f.Name] = v
			}
			e.env.Fields = nil
		}
		e.stats.sigHits[sig.Index]++
		e.hits = append(e.hits, sigHit{sig: sig, fields: fields})
	}
}

func (e *Engine) runBool(p *vm.Program, env any) (bool, error) {
	v, err := e.vm.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

// dispatch hands the signal hits of the current event to the rules that
// use them, in rule order.
func (e *Engine) dispatch() {
	e.gen++
	e.touched = e.touched[:0]
	for _, h := range e.hits {
		for _, rr := range e.sigRoles[h.sig.Index] {
			if e.phase != phaseAll && e.eager[rr.rule] != (e.phase == phaseEager) {
				continue
			}
			if e.mark[rr.rule] != e.gen {
				e.mark[rr.rule] = e.gen
				e.touched = append(e.touched, rr.rule)
			}
		}
	}
	slices.Sort(e.touched)
	for _, ri := range e.touched {
		e.processRule(e.rules[ri])
	}
}

// hitRec returns the evidence record of the current event for hit h.
func (e *Engine) hitRec(h *sigHit) *evRec {
	if h.rec == nil {
		h.rec = newEvRec(e.ev, h.sig.Name, h.fields)
	}
	return h.rec
}

// roleHits collects the hits of the current event for a rule, by role.
type ruleHits struct {
	steps   []stepHit // (step index, hit) in hit order
	until   bool
	resolve *sigHit
	series  *sigHit
	join    *sigHit
}

type stepHit struct {
	step int
	hit  *sigHit
}

func (e *Engine) collect(rt *ruleRT, rh *ruleHits) {
	for i := range e.hits {
		h := &e.hits[i]
		addHit(e.sigRoles[h.sig.Index], rt.idx, h, rh)
	}
}

// processRule and the group key are in keys.go.

// Horizon is how far behind the watermark an event can still change state:
// the longest retention of any rule plus the lateness. The Runner remembers
// applied events that long (so a redelivery or a rerun is not applied
// twice) and treats older events as too late.
func (e *Engine) Horizon() time.Duration {
	var h time.Duration
	for _, rt := range e.rules {
		h = max(h, rt.ttl, rt.r.DedupWindow+e.opts.Lateness)
	}
	return h
}

// Advance moves the event-time watermark and decides what waits for it.
func (e *Engine) Advance(ctx context.Context, watermark time.Time) ([]pipeline.Incident, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out = nil
	if watermark.After(e.wm) {
		e.wm = watermark
		e.wmDirty = true
	}
	if e.wm.After(e.clock) {
		e.clock = e.wm
	}
	e.runTimers(e.wm)
	if e.wm.Sub(e.lastSweep) >= time.Minute {
		e.sweep(e.wm)
		e.lastSweep = e.wm
	}
	e.enforceBudget()
	return e.out, nil
}

// timer asks for a rule key to be looked at once the clock passes at.
type timer struct {
	at   time.Time
	rule int
	key  string
	inc  string // set for a delayed resolve (keep_firing_for) of an incident
}

// incHeap orders open incidents by Expire (then Seq and ID, so that
// those expiring together are forgotten in the same order every run).
type incHeap []*openInc

func (h incHeap) Len() int { return len(h) }
func (h incHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.Expire.Equal(b.Expire) {
		return a.Expire.Before(b.Expire)
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return a.Inc.ID < b.Inc.ID
}
func (h incHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i+1, j+1
}
func (h *incHeap) Push(x any) {
	oi := x.(*openInc)
	*h = append(*h, oi)
	oi.hidx = len(*h)
}
func (h *incHeap) Pop() any {
	old := *h
	oi := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	oi.hidx = 0
	return oi
}

// update places oi by its Expire, adding it if it is not in h.
func (h *incHeap) update(oi *openInc) {
	if oi.hidx == 0 {
		heap.Push(h, oi)
		return
	}
	heap.Fix(h, oi.hidx-1)
}

// remove takes oi out of h if it is there.
func (h *incHeap) remove(oi *openInc) {
	if oi.hidx != 0 {
		heap.Remove(h, oi.hidx-1)
	}
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return timerCmp(h[i], h[j]) < 0 }

// timerCmp orders timers by (time, rule, key, incident).
func timerCmp(a, b timer) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rule, b.rule); c != 0 {
		return c
	}
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return strings.Compare(a.inc, b.inc)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (e *Engine) addTimer(rt *ruleRT, key string, at time.Time) {
	heap.Push(&e.timers, timer{at: at, rule: rt.idx, key: key})
}

// runTimers fires every timer strictly before now, in (time, rule, key)
// order. An event at exactly the deadline may still change the decision.
func (e *Engine) runTimers(now time.Time) {
	for len(e.timers) > 0 && e.timers[0].at.Before(now) {
		t := heap.Pop(&e.timers).(timer)
		for len(e.timers) > 0 && e.timers[0] == t {
			heap.Pop(&e.timers) // duplicate
		}
		rt := e.rules[t.rule]
		if t.inc != "" {
			e.resolveTimer(rt, t.inc, t.at)
			continue
		}
		ks := rt.keys[t.key]
		if ks == nil {
			continue
		}
		e.use(ks)
		rt.kind.timer(e, rt, ks, t.at)
		e.drainDerived()
	}
	e.flushExpiry()
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Events     uint64
	LateEvents uint64
	// SignalHits by signal name (signals no enabled rule uses are not
	// evaluated, so they never count).
	SignalHits map[string]uint64
	// Incidents opened per rule id, and per severity name.
	Incidents           map[string]uint64
	IncidentsBySeverity map[string]uint64
	Updated             map[string]uint64 // dedup updates per rule
	Resolved            map[string]uint64
	NoKey               map[string]uint64 // events without a usable key per rule
	KeyCapOverflows     map[string]uint64
	EvidenceDropped     map[string]uint64
	Suppressed          map[string]uint64 // exceptions applied per rule
	WindowOverflows     map[string]uint64 // window entries dropped by the per-key cap
	Duplicates          map[string]uint64 // repeated deliveries (same source and id) ignored per rule
	KeyFanoutOverflows  map[string]uint64 // list-valued keys cut at maxKeyFanout per rule
	EvalErrors          uint64
	TemplateErrors      uint64
	RawErrors           uint64
	OpenIncidents       int
	Keys                int // key states, in memory or evicted
	KeysByRule          map[string]int
	// EvictedKeys are key states held in the store for the memory budget;
	// StateErrors counts those that could not be written or read back.
	EvictedKeys int
	StateErrors uint64
	// DecidedAtEnd counts the windows DecideAtEnd decided.
	DecidedAtEnd uint64
}

type ruleStats struct {
	incidents, updated, resolved, noKey, keyCap, evDropped, suppressed, winOverflow uint64
	duplicates, fanOverflow                                                         uint64
}

type stats struct {
	events, late                          uint64
	sigHits                               []uint64
	rules                                 []ruleStats
	bySev                                 [pipeline.SeverityCritical + 1]uint64
	evalErrors, templateErrors, rawErrors uint64
	logged                                map[string]bool
	// expiryChecks counts expired() calls: the cost of the key cap.
	expiryChecks uint64
	evictedKeys  int    // key states evicted to the store (budget.go)
	fetchErrors  uint64 // evicted states that could not be written or read back
	decidedAtEnd uint64
}

func (s *stats) init(set *rule.Set) {
	s.sigHits = make([]uint64, len(set.Signals))
	s.rules = make([]ruleStats, len(set.Rules))
	s.logged = make(map[string]bool)
}

func (e *Engine) logOnce(what, msg string, args ...any) {
	if e.stats.logged[what] {
		return
	}
	e.stats.logged[what] = true
	e.log.Warn("engine: "+msg, args...)
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{
		Events: e.stats.events, LateEvents: e.stats.late,
		SignalHits: map[string]uint64{}, KeysByRule: map[string]int{}, Incidents: map[string]uint64{}, IncidentsBySeverity: map[string]uint64{},
		Updated: map[string]uint64{}, Resolved: map[string]uint64{}, NoKey: map[string]uint64{},
		KeyCapOverflows: map[string]uint64{}, EvidenceDropped: map[string]uint64{}, Suppressed: map[string]uint64{},
		WindowOverflows: map[string]uint64{}, Duplicates: map[string]uint64{}, KeyFanoutOverflows: map[string]uint64{},
		EvalErrors: e.stats.evalErrors, TemplateErrors: e.stats.templateErrors, RawErrors: e.stats.rawErrors,
		OpenIncidents: len(e.incidents),
		EvictedKeys:   e.stats.evictedKeys, StateErrors: e.stats.fetchErrors,
		DecidedAtEnd: e.stats.decidedAtEnd,
	}
	for i, n := range e.stats.sigHits {
		if n > 0 {
			s.SignalHits[e.set.Signals[i].Name] += n
		}
	}
	put := func(m map[string]uint64, k string, v uint64) {
		if v > 0 {
			m[k] += v
		}
	}
	for i, rs := range e.stats.rules {
		id := e.rules[i].r.ID
		put(s.Incidents, id, rs.incidents)
		put(s.Updated, id, rs.updated)
		put(s.Resolved, id, rs.resolved)
		put(s.NoKey, id, rs.noKey)
		put(s.KeyCapOverflows, id, rs.keyCap)
		put(s.EvidenceDropped, id, rs.evDropped)
		put(s.Suppressed, id, rs.suppressed)
		put(s.WindowOverflows, id, rs.winOverflow)
		put(s.Duplicates, id, rs.duplicates)
		put(s.KeyFanoutOverflows, id, rs.fanOverflow)
		s.Keys += len(e.rules[i].keys)
		s.KeysByRule[id] = len(e.rules[i].keys)
	}
	for sev, n := range e.stats.bySev {
		put(s.IncidentsBySeverity, pipeline.Severity(sev).String(), n)
	}
	return s
}
