package engine

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// metricKind: a condition on a series sustained `for` a duration against a
// per-key baseline, optionally joined with an event; the baseline is
// persisted in its own record, with its own TTL.
type metricKind struct{ noTimers }

func (metricKind) ruleKind() rule.Kind { return rule.KindMetric }

func (metricKind) init(e *Engine, rt *ruleRT, role func([]*rule.Signal, roleKind, int)) {
	m := rt.r.Metric
	if m == nil {
		return
	}
	if m.Series != nil {
		role([]*rule.Signal{m.Series}, roleSeries, 0)
	}
	if m.Join != nil {
		role(m.Join.Signals, roleJoin, 0)
	}
}

func (metricKind) process(e *Engine, rt *ruleRT, key string, vals []string, rh *ruleHits) {
	e.onMetric(rt, key, vals, rh)
}

func (metricKind) retention(r *rule.Rule) time.Duration {
	m := r.Metric
	d := max(m.For, m.Baseline.Over)
	if m.Join != nil {
		d = max(d, m.Join.Within)
	}
	return d
}

func (metricKind) expired(rt *ruleRT, ks *keyState, now time.Time) bool {
	return ks.Touch.Add(rt.retention()).Before(now)
}

func (metricKind) expiresAt(rt *ruleRT, ks *keyState) time.Time {
	return ks.Touch.Add(rt.retention() + time.Nanosecond)
}

func (metricKind) storeKind() state.Kind { return state.KindPartial }

func baselineStoreKey(rt *ruleRT, key string) []byte {
	return state.Key(state.KindBaseline, rt.r.ID, key)
}

type baselineRec struct {
	Hash string    `json:"h"`
	Base *baseline `json:"b"`
}

func (metricKind) save(e *Engine, b pipeline.StateWriter, rt *ruleRT, ks *keyState) error {
	if ks.Met == nil || ks.Met.Base == nil {
		return nil
	}
	v, err := gojson.Marshal(baselineRec{Hash: rt.r.Hash, Base: ks.Met.Base})
	if err != nil {
		return fmt.Errorf("engine: encode baseline of %s: %w", rt.r.ID, err)
	}
	b.Set(baselineStoreKey(rt, ks.key), v, rt.r.Metric.Baseline.Over+e.opts.Lateness+time.Hour)
	return nil
}

// load restores the baselines, also of keys whose clock has expired: the
// baseline is still useful.
func (metricKind) load(e *Engine, rt *ruleRT, stale *[][]byte) error {
	bp := state.Key(state.KindBaseline, rt.r.ID, "")
	err := e.st.Iterate(bp, func(k, v []byte) error {
		var br baselineRec
		if err := gojson.Unmarshal(v, &br); err != nil || br.Hash != rt.r.Hash {
			*stale = append(*stale, bytes.Clone(k))
			return nil
		}
		key := string(k[len(bp):])
		ks := rt.keys[key]
		if ks == nil {
			ks = e.addKey(rt, &keyState{Hash: rt.r.Hash, key: key, Met: &metricState{}})
		}
		if ks.Met == nil {
			ks.Met = &metricState{}
		}
		ks.Met.Base = br.Base
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: load baselines of %s: %w", rt.r.ID, err)
	}
	return nil
}

func (metricKind) fetch(e *Engine, rt *ruleRT, ks *keyState, get func([]byte) ([]byte, bool, error)) error {
	v, ok, err := get(baselineStoreKey(rt, ks.key))
	if err != nil || !ok {
		return err
	}
	var br baselineRec
	if err := gojson.Unmarshal(v, &br); err != nil {
		return err
	}
	if br.Hash == rt.r.Hash {
		if ks.Met == nil {
			ks.Met = &metricState{}
		}
		ks.Met.Base = br.Base
	}
	return nil
}

func (metricKind) loaded(e *Engine, rt *ruleRT, ks *keyState, _ bool) {
	if ks.Met != nil && ks.Met.Base == nil {
		ks.Met.Base = &baseline{}
	}
}

// metricState is the `for` clock of one key of a metric rule.
type metricState struct {
	BreachStart time.Time `json:"bs,omitempty"`
	Sustained   time.Time `json:"su,omitempty"` // when `for` was first met in this breach
	LastSample  time.Time `json:"ls,omitempty"`
	LastValue   float64   `json:"lv,omitempty"`
	Fired       bool      `json:"fd,omitempty"` // the current breach has fired
	ClearSince  time.Time `json:"cs,omitempty"`
	// Firing are the open incidents to close when the metric clears
	// (several when a gap split a breach).
	Firing     []string            `json:"fi,omitempty"`
	BreachRefs []pipeline.EventRef `json:"br,omitempty"`
	BreachRec  *evRec              `json:"bx,omitempty"` // latest breaching sample
	Joins      []*evRec            `json:"j,omitempty"`  // recent join events
	// Base is persisted separately (KindBaseline), with its own TTL.
	Base *baseline `json:"-"`
}

// maxJoins bounds the join events remembered per key.
const maxJoins = 32

func (rt *ruleRT) metricGap() time.Duration {
	if g := rt.r.Metric.Gap; g > 0 {
		return g
	}
	return 3 * time.Minute
}

func (e *Engine) onMetric(rt *ruleRT, key string, vals []string, rh *ruleHits) {
	if rh.series == nil && rh.join == nil {
		return
	}
	ks := e.getKey(rt, key, vals, true)
	if ks == nil {
		return
	}
	if ks.Met == nil {
		ks.Met = &metricState{}
	}
	if ks.Met.Base == nil {
		ks.Met.Base = &baseline{}
	}
	t := e.ev.Time
	if t.After(ks.Touch) {
		ks.Touch = t
	}
	e.touch(ks)
	if rh.join != nil && e.stepWhere(rt.r.Metric.Join, rh.join) {
		e.metricJoin(rt, ks, e.hitRec(rh.join))
	}
	if rh.series != nil {
		e.metricSample(rt, ks, rh.series)
	}
}

func (e *Engine) metricJoin(rt *ruleRT, ks *keyState, rec *evRec) {
	m := ks.Met
	mr := rt.r.Metric
	keep := mr.Join.Within + mr.For + rt.metricGap()
	j := m.Joins[:0:0]
	for _, x := range m.Joins {
		if !x.Time.Before(rec.Time.Add(-keep)) {
			j = append(j, x)
		}
	}
	j = append(j, rec)
	if len(j) > maxJoins {
		j = j[len(j)-maxJoins:]
	}
	m.Joins = j
	if m.Sustained.IsZero() || rec.Time.After(m.Sustained.Add(mr.Join.Within)) {
		return
	}
	// A sustained breach waiting for its join fires; one that has fired
	// fires again (an update of the same incident) when a join signal it
	// has not seen yet arrives, so that overrides such as "Falco and
	// GuardDuty both joined" can apply.
	if !m.Fired {
		e.metricFire(rt, ks, rec, rec.Time)
		return
	}
	for _, x := range j[:len(j)-1] {
		if x.Signal == rec.Signal && !x.Time.Before(m.BreachStart.Add(-mr.Join.Within)) {
			return
		}
	}
	e.metricFire(rt, ks, rec, rec.Time)
}

func (e *Engine) metricSample(rt *ruleRT, ks *keyState, h *sigHit) {
	mr := rt.r.Metric
	m := ks.Met
	t := e.ev.Time
	vf := mr.ValueField
	if vf == "" {
		vf = "value"
	}
	v, ok := rule.ToFloat(h.fields[vf])
	if !ok {
		e.stats.evalErrors++
		e.logOnce("metricvalue:"+rt.r.ID, "metric sample without a numeric value field", "rule", rt.r.ID, "field", vf)
		return
	}
	if mr.ResetOnGap && !m.LastSample.IsZero() && t.Sub(m.LastSample) > rt.metricGap() {
		m.endBreach()
	}
	if t.After(m.LastSample) {
		m.LastSample = t
	}
	m.LastValue = v
	base, n := m.Base.value(mr.Baseline.Stat, t, mr.Baseline.Over)
	if n < mr.Baseline.MinSamples || n == 0 {
		base = 0
	}
	env := rule.MetricEnv{Value: v, Baseline: base, Samples: n}
	breach, err := e.runBool(mr.Expr, &env)
	if err != nil {
		e.stats.evalErrors++
		return
	}
	rec := e.hitRec(h)
	if !breach {
		m.Base.add(t, v, mr.Baseline.Over)
		m.endBreach()
		if len(m.Firing) > 0 && rt.r.Resolve != nil && rt.r.Resolve.MetricClears {
			if m.ClearSince.IsZero() {
				m.ClearSince = t
			}
			if t.Sub(m.ClearSince) >= rt.r.Resolve.KeepFiringFor {
				for _, id := range m.Firing {
					if oi := e.incidents[id]; oi != nil && oi.Inc.Status == pipeline.IncidentOpen {
						ref := rec.ref(stepAlias(nil, rec.Signal))
						e.resolve(rt, oi, t, &ref)
					}
				}
				m.Firing = nil
				m.ClearSince = time.Time{}
			}
		}
		return
	}
	m.ClearSince = time.Time{}
	if m.BreachStart.IsZero() {
		m.BreachStart = t
	}
	m.BreachRec = rec
	m.BreachRefs = append(m.BreachRefs, rec.ref(rec.Signal))
	if len(m.BreachRefs) > rt.maxEvents {
		// Keep the first and the latest samples of a long breach.
		m.BreachRefs = append(m.BreachRefs[:1], m.BreachRefs[2:]...)
	}
	if t.Sub(m.BreachStart) < mr.For || m.Fired {
		return
	}
	if m.Sustained.IsZero() {
		m.Sustained = t
	}
	if mr.Join == nil {
		e.metricFire(rt, ks, nil, t)
		return
	}
	from, to := m.BreachStart.Add(-mr.Join.Within), m.Sustained.Add(mr.Join.Within)
	for i := len(m.Joins) - 1; i >= 0; i-- {
		j := m.Joins[i]
		if !j.Time.Before(from) && !j.Time.After(to) {
			e.metricFire(rt, ks, j, t)
			return
		}
	}
}

func (m *metricState) endBreach() {
	m.BreachStart, m.Sustained, m.Fired = time.Time{}, time.Time{}, false
	m.BreachRefs, m.BreachRec = nil, nil
}

func (e *Engine) metricFire(rt *ruleRT, ks *keyState, join *evRec, at time.Time) {
	mr := rt.r.Metric
	m := ks.Met
	m.Fired = true
	series := m.BreachRec
	if series == nil {
		return
	}
	steps := []namedRec{{series.Signal, series}}
	refs := append([]pipeline.EventRef(nil), m.BreachRefs...)
	signals := map[string]bool{series.Signal: true}
	last := series
	if join != nil {
		as := stepAlias(mr.Join, join.Signal)
		steps = append(steps, namedRec{as, join})
		signals[as] = true
		// Every join signal seen around this breach counts in `signals`
		// and in the evidence (one event per signal, the latest).
		from, to := m.BreachStart.Add(-mr.Join.Within), at.Add(mr.Join.Within)
		latest := map[string]*evRec{}
		for _, x := range m.Joins {
			if !x.Time.Before(from) && !x.Time.After(to) {
				latest[x.Signal] = x
			}
		}
		latest[join.Signal] = join
		names := make([]string, 0, len(latest))
		for name := range latest {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			x := latest[name]
			signals[name] = true
			refs = append(refs, x.ref(stepAlias(mr.Join, name)))
			if x.Time.After(last.Time) {
				last = x
			}
		}
	}
	sortRefs(refs)
	base, n := m.Base.value(mr.Baseline.Stat, at, mr.Baseline.Over)
	if n < mr.Baseline.MinSamples || n == 0 {
		base = 0
	}
	agg := map[string]any{"count": len(m.BreachRefs), "value": m.LastValue, "baseline": base,
		"for": m.Sustained.Sub(m.BreachStart).String()}
	if oi := e.fire(&hit{rt: rt, key: ks.key, vals: ks.Vals, steps: steps, evidence: refs, agg: agg,
		signals: signals, last: last, at: at}); oi != nil {
		if !slices.Contains(m.Firing, oi.Inc.ID) {
			m.Firing = append(m.Firing, oi.Inc.ID)
		}
	}
}

// baseline summarises the non-breaching samples of the last `over`:
// exact count/sum/max per time bucket, and a bounded, deterministic
// reservoir for the p95 (adjacent pairs merge when it is full, so older
// history is kept at a coarser resolution).
type baseline struct {
	Buckets []bucket   `json:"b,omitempty"`
	Res     []resEntry `json:"r,omitempty"`
	Merges  uint64     `json:"m,omitempty"`
	// sorted is Res ordered by value (rebuilt when nil), so that the p95
	// of each sample needs no sort.
	sorted []resEntry
}

func resCmp(x, y resEntry) int {
	switch {
	case x.V < y.V:
		return -1
	case x.V > y.V:
		return 1
	case x.T < y.T:
		return -1
	case x.T > y.T:
		return 1
	}
	return x.W - y.W
}

type bucket struct {
	Start int64   `json:"s"` // unix nanos
	N     int     `json:"n"`
	Sum   float64 `json:"u"`
	Max   float64 `json:"x"`
}

type resEntry struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
	W int     `json:"w"`
}

const (
	baselineBuckets = 32
	reservoirCap    = 128
)

func (b *baseline) add(t time.Time, v float64, over time.Duration) {
	if over <= 0 {
		over = 7 * 24 * time.Hour
	}
	width := int64(over) / baselineBuckets
	if width <= 0 {
		width = 1
	}
	ts := t.UnixNano()
	start := ts - ts%width
	if n := len(b.Buckets); n > 0 && b.Buckets[n-1].Start == start {
		bk := &b.Buckets[n-1]
		bk.N++
		bk.Sum += v
		bk.Max = max(bk.Max, v)
	} else {
		b.Buckets = append(b.Buckets, bucket{Start: start, N: 1, Sum: v, Max: v})
	}
	re := resEntry{T: ts, V: v, W: 1}
	b.Res = append(b.Res, re)
	if b.sorted != nil {
		i, _ := slices.BinarySearchFunc(b.sorted, re, resCmp)
		b.sorted = slices.Insert(b.sorted, i, re)
	}
	if len(b.Res) > reservoirCap {
		b.compact()
		b.sorted = nil
	}
	b.evict(t, over)
}

// compact merges adjacent reservoir entries pairwise, keeping alternately
// the higher and the lower value so that quantiles stay unbiased.
func (b *baseline) compact() {
	out := b.Res[:0]
	for i := 0; i+1 < len(b.Res); i += 2 {
		x, y := b.Res[i], b.Res[i+1]
		keep := x
		hi := (b.Merges+uint64(i/2))%2 == 0
		if (y.V > x.V) == hi {
			keep = y
		}
		keep.T, keep.W = y.T, x.W+y.W
		out = append(out, keep)
	}
	if len(b.Res)%2 == 1 {
		out = append(out, b.Res[len(b.Res)-1])
	}
	b.Merges++
	b.Res = out
}

func (b *baseline) evict(t time.Time, over time.Duration) {
	cut := t.Add(-over).UnixNano()
	width := int64(over) / baselineBuckets
	i := 0
	for i < len(b.Buckets) && b.Buckets[i].Start+width <= cut {
		i++
	}
	if i > 0 {
		b.Buckets = append(b.Buckets[:0], b.Buckets[i:]...)
	}
	j := 0
	for j < len(b.Res) && b.Res[j].T < cut {
		j++
	}
	if j > 0 {
		if b.sorted != nil {
			for _, re := range b.Res[:j] {
				if k, ok := slices.BinarySearchFunc(b.sorted, re, resCmp); ok {
					b.sorted = slices.Delete(b.sorted, k, k+1)
				}
			}
		}
		b.Res = append(b.Res[:0], b.Res[j:]...)
	}
}

// value returns the baseline statistic at t and the sample count.
func (b *baseline) value(stat rule.BaselineStat, t time.Time, over time.Duration) (float64, int) {
	if b == nil {
		return 0, 0
	}
	if over <= 0 {
		over = 7 * 24 * time.Hour
	}
	b.evict(t, over)
	n, sum, mx := 0, 0.0, 0.0
	for i, bk := range b.Buckets {
		n += bk.N
		sum += bk.Sum
		if i == 0 || bk.Max > mx {
			mx = bk.Max
		}
	}
	if n == 0 {
		return 0, 0
	}
	switch stat {
	case rule.BaselineMean:
		return sum / float64(n), n
	case rule.BaselineMax:
		return mx, n
	}
	return b.quantile(0.95), n
}

func (b *baseline) quantile(q float64) float64 {
	if len(b.Res) == 0 {
		return 0
	}
	if len(b.sorted) != len(b.Res) {
		b.sorted = slices.Clone(b.Res)
		slices.SortFunc(b.sorted, resCmp)
	}
	s := b.sorted
	total := 0
	for _, r := range s {
		total += r.W
	}
	need := q * float64(total)
	cum := 0
	for _, r := range s {
		cum += r.W
		if float64(cum) >= need {
			return r.V
		}
	}
	return s[len(s)-1].V
}
