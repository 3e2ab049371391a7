package engine

import (
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"text/template"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// evRec is what state keeps of an event that a rule may still need in an
// incident: identity, entity, the signal's fields and the raw record (for
// templates such as {{ .steps.exec.raw.userIdentity.arn }}).
type evRec struct {
	Signal   string            `json:"s"`
	ID       string            `json:"i"`
	Source   pipeline.Source   `json:"o"`
	Type     string            `json:"y"`
	Time     time.Time         `json:"t"`
	Severity pipeline.Severity `json:"v"`
	Entity   pipeline.Entity   `json:"e"`
	Raw      json.RawMessage   `json:"r,omitempty"`
	Fields   map[string]any    `json:"f,omitempty"`
}

func newEvRec(ev *pipeline.Event, signal string, fields map[string]any) *evRec {
	// An event's Raw is its own and never changes (pipeline.Event): shared,
	// not copied.
	return &evRec{Signal: signal, ID: ev.ID, Source: ev.Source, Type: ev.Type, Time: ev.Time.UTC(),
		Severity: ev.Severity, Entity: ev.Entity, Raw: ev.Raw, Fields: fields}
}

func (r *evRec) ref(step string) pipeline.EventRef {
	return pipeline.EventRef{Source: r.Source, ID: r.ID, Type: r.Type, Time: r.Time.UTC(), Step: step}
}

// env builds the expression environment of a stored event.
func (r *evRec) env(lists map[string][]any) *rule.Env {
	return &rule.Env{
		Event:  rule.EventEnv{ID: r.ID, Source: string(r.Source), Type: r.Type, Time: r.Time, Severity: r.Severity.String()},
		Entity: rule.EntityEnvOf(r.Entity),
		Raw:    decodeRaw(r.Raw),
		Lists:  lists,
		Fields: r.Fields,
	}
}

// stepMap is the step's map in the output environment (rule.StepData).
func (r *evRec) stepMap(raw map[string]any) map[string]any {
	ev := pipeline.Event{ID: r.ID, Source: r.Source, Type: r.Type, Time: r.Time, Severity: r.Severity, Entity: r.Entity}
	return rule.StepData(r.Signal, &ev, raw, r.Fields)
}

// namedRec is a step event with its alias.
type namedRec struct {
	as  string
	rec *evRec
}

// hit is one firing of a rule, before exceptions and dedup.
type hit struct {
	rt       *ruleRT
	key      string
	vals     []string
	steps    []namedRec // last one per alias wins in .steps
	evidence []pipeline.EventRef
	agg      map[string]any
	signals  map[string]bool
	last     *evRec
	at       time.Time
}

// openInc is an incident that can still be updated (dedup) or resolved.
type openInc struct {
	Inc      pipeline.Incident `json:"inc"`
	Rule     string            `json:"rule"`
	Hash     string            `json:"hash"`
	GroupKey string            `json:"key"`
	DedupKey string            `json:"dedup"`
	// Steps, Agg and Signals of the first hit, for resolve.closes.
	Steps   []stepJSON      `json:"steps,omitempty"`
	Agg     map[string]any  `json:"agg,omitempty"`
	Signals map[string]bool `json:"signals,omitempty"`
	// Expire is the event time after which nothing can touch the
	// incident any more; it is then forgotten.
	Expire time.Time `json:"expire"`
	// Seq orders incidents by creation (resolve emits in that order).
	Seq uint64 `json:"seq"`
	// ResolveAt/ResolveBy: a resolve waiting out keep_firing_for; a new
	// hit before then cancels it.
	ResolveAt time.Time          `json:"resolve_at,omitempty"`
	ResolveBy *pipeline.EventRef `json:"resolve_by,omitempty"`

	// closes is the incident's output environment for resolve.closes as of
	// Count closesCount (closesEnv): built once, not per resolving event,
	// as it decodes the step records.
	closes      map[string]any
	closesCount int
	// hidx is 1 + the incident's index in the engine's expiry heap (0:
	// not in it).
	hidx int
}

type stepJSON struct {
	As  string `json:"as"`
	Rec *evRec `json:"rec"`
}

// IncidentID is the deterministic incident ID: the first 32 hex digits of
// sha256(rule id 0x00 dedup key 0x00 first evidence event id).
func IncidentID(ruleID, dedupKey, firstEvent string) string {
	return incidentID(ruleID, dedupKey, firstEvent)
}

func incidentID(ruleID, dedupKey, firstEvent string) string {
	// One allocation (the result): every incident computes this.
	var buf [256]byte
	in := append(buf[:0], ruleID...)
	in = append(in, 0)
	in = append(in, dedupKey...)
	in = append(in, 0)
	in = append(in, firstEvent...)
	sum := sha256.Sum256(in)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// rawFor decodes a step's raw record, reusing the current event's.
func (e *Engine) rawFor(r *evRec) map[string]any {
	if e.ev != nil && r.ID == e.ev.ID && r.Source == e.ev.Source {
		e.ensureRaw()
		return e.env.Raw
	}
	return decodeRaw(r.Raw)
}

// outputEnv builds the output environment of a hit (rule.BuildOutputEnv).
func (e *Engine) outputEnv(rt *ruleRT, key map[string]string, steps []namedRec, agg map[string]any, signals map[string]bool, last *evRec, count int) map[string]any {
	sm := make(map[string]map[string]any, len(steps))
	raws := make(map[*evRec]map[string]any, len(steps))
	var lastMap map[string]any
	for _, s := range steps {
		raw, ok := raws[s.rec]
		if !ok {
			raw = e.rawFor(s.rec)
			raws[s.rec] = raw
		}
		m := s.rec.stepMap(raw)
		sm[s.as] = m
		if s.rec == last {
			lastMap = m
		}
	}
	in := rule.OutputInput{Rule: rt.r, Key: key, Steps: sm, Agg: agg, Signals: signals, Count: count, Event: lastMap}
	if last != nil {
		in.Entity = last.Entity
		if lastMap == nil {
			in.Event = last.stepMap(e.rawFor(last))
		}
	}
	return rule.BuildOutputEnv(in)
}

// render executes t, one of r's templates, building the output
// environment only when t has actions: a literal title (every Sigma
// rule's) costs no raw decode.
func (e *Engine) render(r *rule.Rule, t *template.Template, env func() map[string]any) string {
	if t == nil {
		return ""
	}
	if s, ok := e.literals[t]; ok {
		return s // kept: every Sigma hit renders its title
	}
	if s, ok := rule.LiteralText(t); ok {
		if e.literals == nil {
			e.literals = map[*template.Template]string{}
		}
		e.literals[t] = s
		return s
	}
	return e.execTemplate(r, t, env())
}

func (e *Engine) execTemplate(r *rule.Rule, t *template.Template, data map[string]any) string {
	s, err := r.Render(t, data)
	if err != nil {
		e.stats.templateErrors++
		e.logOnce("tmpl:"+t.Name(), "template failed; using its text", "template", t.Name(), "err", err)
		if t.Tree != nil && t.Tree.Root != nil {
			return t.Tree.Root.String()
		}
		return ""
	}
	return s
}

// excepted reports whether an active exception matches the hit's last event.
func (e *Engine) excepted(rt *ruleRT, last *evRec) bool {
	exs := rt.r.Exceptions
	if len(exs) == 0 || last == nil {
		return false
	}
	var env *rule.Env
	for i := range exs {
		ex := &exs[i]
		if !ex.Active(last.Time) {
			continue
		}
		if env == nil {
			if e.ev != nil && last.ID == e.ev.ID && last.Source == e.ev.Source {
				e.ensureRaw()
				cp := e.env
				cp.Fields = last.Fields
				env = &cp
			} else {
				env = last.env(e.set.Lists)
			}
		}
		// A field that fails is counted and compares as nil: the other
		// fields and exceptions still apply.
		vals := make([]any, len(ex.Fields))
		for j, f := range ex.Fields {
			v, err := e.vm.Run(f, env)
			if err != nil {
				e.stats.evalErrors++
			}
			vals[j] = v
		}
		for _, row := range ex.Values {
			if ex.MatchesRow(vals, row) {
				return true
			}
		}
	}
	return false
}

// fire turns a hit into a new or updated incident (or nothing, when an
// exception applies) and appends it to the output. It returns the incident.
func (e *Engine) fire(h *hit) *openInc {
	rt := h.rt
	rs := &e.stats.rules[rt.idx]
	if e.excepted(rt, h.last) {
		rs.suppressed++
		return nil
	}
	r := rt.r
	var keyMap map[string]string
	if len(r.By) == 0 {
		// A rule without a key (a Sigma detection: one incident per
		// event) groups nothing; its incident's key says whom the event
		// concerns (account, region, principal, the task when known), as
		// a keyed rule's does, so that sinks route it to the record's
		// account, filters and case files find it by task or principal.
		// One empty map, never written, serves events that name nothing.
		if keyMap = entityKey(h.last); keyMap == nil {
			if rt.noKey == nil {
				rt.noKey = map[string]string{}
			}
			keyMap = rt.noKey
		}
	} else {
		keyMap = make(map[string]string, len(r.By)+2)
		for i, kf := range r.By {
			if i < len(h.vals) {
				keyMap[kf.Name] = h.vals[i]
			}
		}
		// A Sigma correlation groups by record fields (userIdentity.arn,
		// sourceIPAddress): its key also says the account and region of
		// the event that completed it, which sinks route by.
		if r.Origin == "sigma" && h.last != nil {
			for _, kv := range [...][2]string{{"account", h.last.Entity.Account}, {"region", h.last.Entity.Region}} {
				if _, ok := keyMap[kv[0]]; !ok && kv[1] != "" {
					keyMap[kv[0]] = kv[1]
				}
			}
		}
	}
	// The output environment costs a raw decode per step: build it only
	// when something reads it (a repeat without overrides does not).
	var env map[string]any
	getEnv := func() map[string]any {
		if env == nil {
			env = e.outputEnv(rt, keyMap, h.steps, h.agg, h.signals, h.last, 1)
		}
		return env
	}
	dk := ""
	if r.DedupKey != nil {
		dk = e.execTemplate(r, r.DedupKey, getEnv())
	} else {
		dk = r.ID
		for _, v := range h.vals {
			dk += "/" + v
		}
	}
	// Only a dedup window reads the dedup index: a rule without one keeps
	// no entry (most Sigma rules: one per hit, forgotten at the next sweep).
	dedups := r.DedupWindow > 0
	var dkey string
	if dedups {
		dkey = r.ID + "\x00" + dk
	}

	var oi *openInc
	if id, ok := e.dedup[dkey]; dedups && ok {
		if cur := e.incidents[id]; cur != nil && cur.Inc.Status == pipeline.IncidentOpen &&
			h.at.Sub(cur.Inc.LastSeen) <= r.DedupWindow && !h.at.After(cur.Expire) {
			oi = cur
		}
	}
	first := ""
	if len(h.evidence) > 0 {
		first = h.evidence[0].ID
	}
	id := incidentID(r.ID, dk, first)
	if oi == nil {
		if cur := e.incidents[id]; cur != nil && cur.Inc.Status == pipeline.IncidentOpen {
			oi = cur // the same first event fired again: same incident
		}
	}
	if (r.Derived != nil || r.Silent) && e.chainHit(rt, h, oi, dk, first) {
		return nil // a silent rule feeds its derived hit only (chain.go)
	}
	if oi != nil {
		oi.Inc.Count++
		if !oi.ResolveAt.IsZero() && !h.at.Before(oi.ResolveBy.Time) {
			oi.ResolveAt, oi.ResolveBy = time.Time{}, nil // it fired again: stays open
		}
		if len(r.Overrides) > 0 {
			env := getEnv()
			env["count"] = oi.Inc.Count
			if sev := e.severity(rt, env); sev > oi.Inc.Severity {
				oi.Inc.Severity = sev
			}
		}
		if h.at.After(oi.Inc.LastSeen) {
			oi.Inc.LastSeen = h.at.UTC()
		}
		e.addEvidence(rt, &oi.Inc, h.evidence)
		e.setExpire(rt, oi)
		rs.updated++
		e.markInc(oi)
		e.emit(oi)
		return oi
	}

	sev := r.Severity
	if len(r.Overrides) > 0 {
		sev = e.severity(rt, getEnv())
	}
	inc := pipeline.Incident{
		ID:        id,
		Rule:      r.ID,
		Severity:  sev,
		Tags:      nonNil(r.Tags),
		Mitre:     nonNil(r.Mitre),
		Key:       keyMap,
		FirstSeen: h.at.UTC(),
		LastSeen:  h.at.UTC(),
		Runbook:   r.Runbook,
		Count:     1,
		Status:    pipeline.IncidentOpen,
		Route:     r.Route,
		Events:    []pipeline.EventRef{},
	}
	if len(h.evidence) > 0 && h.evidence[0].Time.Before(inc.FirstSeen) {
		inc.FirstSeen = h.evidence[0].Time.UTC()
	}
	// A GuardDuty finding is timed when it was last updated; the activity
	// it reports began earlier (eventFirstSeen), and so did the incident.
	if t := began(h); !t.IsZero() && t.Before(inc.FirstSeen) {
		inc.FirstSeen = t
	}
	inc.Title = e.render(r, r.Title, getEnv)
	if r.Title == nil {
		inc.Title = r.ID
	}
	inc.Summary = e.render(r, r.Summary, getEnv)
	inc.Remediation = e.render(r, r.Remediation, getEnv)
	if len(r.Fields) > 0 {
		env := getEnv()
		inc.Fields = make(map[string]any, len(r.Fields))
		for _, f := range r.Fields {
			v, err := e.vm.Run(f.Prog, env)
			if err != nil {
				e.stats.evalErrors++
				continue
			}
			inc.Fields[f.Name] = v
		}
	}
	e.addEvidence(rt, &inc, h.evidence)
	e.incSeq++
	oi = &openInc{Inc: inc, Rule: r.ID, Hash: r.Hash, GroupKey: h.key, DedupKey: dk, Agg: h.agg, Signals: h.signals, Seq: e.incSeq}
	// Only resolve.closes reads an incident's step events after it fired
	// (closesEnv); kept for every hit, each held a copy of its record for
	// the incident's life, in memory and in the store.
	if r.Resolve != nil && r.Resolve.Closes != nil {
		for _, s := range h.steps {
			oi.Steps = append(oi.Steps, stepJSON{As: s.as, Rec: s.rec})
		}
	}
	e.setExpire(rt, oi)
	rs.incidents++
	e.stats.bySev[inc.Severity]++
	if old := e.incidents[inc.ID]; old != nil && old != oi {
		e.incExp.remove(old) // replaced: only the new one expires
	}
	e.incidents[inc.ID] = oi
	if dedups {
		e.dedup[dkey] = inc.ID
	}
	rt.open[h.key] = append(rt.open[h.key], inc.ID)
	e.markInc(oi)
	e.emit(oi)
	return oi
}

// entityKey is the key a keyless rule's incident shows: the non-empty
// entity fields of its event (nil: none, or no event).
func entityKey(r *evRec) map[string]string {
	if r == nil {
		return nil
	}
	e := &r.Entity
	var m map[string]string
	for _, kv := range [...][2]string{
		{"account", e.Account}, {"region", e.Region}, {"principal", e.Principal},
		{"cluster", e.Cluster}, {"service", e.Service}, {"task_arn", e.TaskARN},
		{"task_definition_arn", e.TaskDefinitionARN}, {"container_id", e.ContainerID},
	} {
		if kv[1] == "" {
			continue
		}
		if m == nil {
			m = make(map[string]string, 4)
		}
		m[kv[0]] = kv[1]
	}
	return m
}

// began is the earliest time the step records of h say their activity
// began (format.Began), or zero.
func began(h *hit) time.Time {
	var first time.Time
	note := func(r *evRec) {
		if r == nil {
			return
		}
		if t, ok := format.Began(r.Source, r.Raw); ok && (first.IsZero() || t.Before(first)) {
			first = t.UTC()
		}
	}
	for _, s := range h.steps {
		note(s.rec)
	}
	note(h.last)
	return first
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (e *Engine) severity(rt *ruleRT, env map[string]any) pipeline.Severity {
	sev := rt.r.Severity
	for _, o := range rt.r.Overrides {
		if o.When == nil {
			continue
		}
		ok, err := e.runBool(o.When, env)
		if err != nil {
			e.stats.evalErrors++
			continue
		}
		if ok {
			sev = o.Severity
		}
	}
	return sev
}

func (e *Engine) addEvidence(rt *ruleRT, inc *pipeline.Incident, refs []pipeline.EventRef) {
	max := rt.maxEvents
	evs := inc.Events
next:
	for _, ref := range refs {
		for _, x := range evs {
			if x.ID == ref.ID && x.Source == ref.Source && x.Step == ref.Step {
				continue next
			}
		}
		if len(evs) >= max {
			inc.EventsDropped++
			e.stats.rules[rt.idx].evDropped++
			e.logOnce("evidence:"+rt.r.ID, "evidence cap reached; further events are counted, not kept", "rule", rt.r.ID, "max_events", max)
			continue
		}
		// Copy on append: emitted incidents share the old array.
		evs = append(evs[:len(evs):len(evs)], ref)
	}
	inc.Events = evs
}

// setExpire computes when an open incident can no longer be touched: the
// dedup window after its last hit, longer when a resolve can still close it.
func (e *Engine) setExpire(rt *ruleRT, oi *openInc) {
	keep := rt.r.DedupWindow
	if rt.r.Resolve != nil && keep < resolveHorizon {
		keep = resolveHorizon
	}
	oi.Expire = oi.Inc.LastSeen.Add(keep)
	e.incExp.update(oi)
}

// resolveHorizon is how long an incident of a rule with `resolve` stays
// closable after its last hit.
const resolveHorizon = 7 * 24 * time.Hour

func (e *Engine) emit(oi *openInc) { e.out = append(e.out, oi.copyInc()) }

// copyInc is the incident as handed out: its evidence list is the
// caller's, as the engine keeps appending to its own.
func (oi *openInc) copyInc() pipeline.Incident {
	inc := oi.Inc
	inc.Events = append([]pipeline.EventRef(nil), oi.Inc.Events...)
	return inc
}

func (e *Engine) markInc(oi *openInc) {
	if e.durable { // an ephemeral engine never checkpoints
		e.dirtyIncs[oi.Inc.ID] = struct{}{}
	}
}

// resolveSignal closes the rule's open incidents on key that the resolve
// filter accepts.
func (e *Engine) resolveSignal(rt *ruleRT, key string, h *sigHit) {
	ids := rt.open[key]
	if len(ids) == 0 {
		return
	}
	rec := e.hitRec(h)
	t := e.ev.Time
	var evMap map[string]any
	kept := ids[:0:0]
	for _, id := range ids {
		oi := e.incidents[id]
		if oi == nil || oi.Inc.Status != pipeline.IncidentOpen || t.After(oi.Expire) || t.Before(oi.Inc.FirstSeen) {
			if oi != nil && oi.Inc.Status == pipeline.IncidentOpen && !t.After(oi.Expire) {
				kept = append(kept, id)
			}
			continue
		}
		if c := rt.r.Resolve.Closes; c != nil {
			if evMap == nil {
				evMap = rec.stepMap(e.rawFor(rec))
			}
			env := e.closesEnv(rt, oi, evMap)
			ok, err := e.runBool(c, env)
			if err != nil {
				e.stats.evalErrors++
			}
			if !ok {
				kept = append(kept, id)
				continue
			}
		}
		ref := rec.ref("")
		if k := rt.r.Resolve.KeepFiringFor; k > 0 {
			if oi.ResolveAt.IsZero() {
				oi.ResolveAt, oi.ResolveBy = t.Add(k).UTC(), &ref
				e.addIncTimer(rt, oi)
				e.markInc(oi)
			}
			kept = append(kept, id)
			continue
		}
		e.resolve(rt, oi, t, &ref)
	}
	rt.setOpen(key, kept)
}

func (e *Engine) addIncTimer(rt *ruleRT, oi *openInc) {
	heap.Push(&e.timers, timer{at: oi.ResolveAt, rule: rt.idx, key: oi.GroupKey, inc: oi.Inc.ID})
}

// resolveTimer closes an incident whose keep_firing_for has passed
// without a new hit.
func (e *Engine) resolveTimer(rt *ruleRT, id string, at time.Time) {
	oi := e.incidents[id]
	if oi == nil || oi.Inc.Status != pipeline.IncidentOpen || oi.ResolveAt.IsZero() || oi.ResolveAt.After(at) {
		return
	}
	e.resolve(rt, oi, oi.ResolveAt, oi.ResolveBy)
}

// closesEnv is what resolve.closes sees (rule.ClosesEnv): the open
// incident's output environment and the resolving event.
func (e *Engine) closesEnv(rt *ruleRT, oi *openInc, event map[string]any) map[string]any {
	if oi.closes == nil || oi.closesCount != oi.Inc.Count {
		steps := make([]namedRec, len(oi.Steps))
		var last *evRec
		for i, s := range oi.Steps {
			steps[i] = namedRec{s.As, s.Rec}
			if last == nil || !s.Rec.Time.Before(last.Time) {
				last = s.Rec
			}
		}
		oi.closes, oi.closesCount = e.outputEnv(rt, oi.Inc.Key, steps, oi.Agg, oi.Signals, last, oi.Inc.Count), oi.Inc.Count
	}
	return rule.ClosesEnv(oi.closes, event)
}

func (e *Engine) resolve(rt *ruleRT, oi *openInc, at time.Time, by *pipeline.EventRef) {
	at = at.UTC()
	oi.Inc.Status = pipeline.IncidentResolved
	oi.Inc.ResolvedAt = &at
	oi.Inc.ResolvedBy = by
	e.stats.rules[rt.idx].resolved++
	e.emit(oi)
	e.forget(rt, oi)
}

// forget drops an incident that can no longer change.
func (e *Engine) forget(rt *ruleRT, oi *openInc) {
	e.drop(rt, oi)
	id := oi.Inc.ID
	ids := rt.open[oi.GroupKey]
	if len(ids) > 0 && ids[0] == id {
		// Incidents of a key mostly close in the order they opened: a
		// key-less Sigma rule holds thousands, and copying the rest for
		// each one made closing them quadratic.
		rt.setOpen(oi.GroupKey, ids[1:])
		return
	}
	kept := ids[:0:0]
	for _, x := range ids {
		if x != id {
			kept = append(kept, x)
		}
	}
	rt.setOpen(oi.GroupKey, kept)
}

// drop forgets an incident everywhere but in its key's open list, which
// the caller prunes.
func (e *Engine) drop(rt *ruleRT, oi *openInc) {
	id := oi.Inc.ID
	delete(e.incidents, id)
	e.incExp.remove(oi)
	delete(e.dirtyIncs, id)
	e.deadIncs = append(e.deadIncs, id)
	if rt.r.DedupWindow <= 0 {
		return // it has no dedup entry (fire)
	}
	dkey := rt.r.ID + "\x00" + oi.DedupKey
	if e.dedup[dkey] == id {
		delete(e.dedup, dkey)
		e.deadDedups = append(e.deadDedups, dedupStoreKey(dkey))
	}
}

// Open returns a copy of every incident still open, in the order they
// opened: what a correlate instance that restored a partition's state
// sends again, since the instance that decided them may have died with
// them in its outbox (their ids are deterministic: sinks upsert them).
func (e *Engine) Open() []pipeline.Incident {
	e.mu.Lock()
	defer e.mu.Unlock()
	ois := make([]*openInc, 0, len(e.incidents))
	for _, oi := range e.incidents {
		if oi.Inc.Status == pipeline.IncidentOpen {
			ois = append(ois, oi)
		}
	}
	slices.SortFunc(ois, func(a, b *openInc) int { return cmp.Compare(a.Seq, b.Seq) })
	out := make([]pipeline.Incident, len(ois))
	for i, oi := range ois {
		out[i] = oi.copyInc()
	}
	return out
}
