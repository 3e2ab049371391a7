package engine

import (
	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// prepared is Prepare's work on one event (see pipeline.Preparer): the raw
// record decoded as evaluate would decode it (the projection of its
// candidate signals, and the whole record when one of them needs it and
// the projection cannot serve), and the verdicts of the candidate signals'
// Go matchers (Sigma detections), which read the record and nothing else.
// Nothing here depends on the event's entity, which the Runner may resolve
// after Prepare, nor on engine state.
type prepared struct {
	e         *Engine // the engine it was prepared for
	proj      map[string]any
	rawProj   bool // proj holds the projection
	whole     map[string]any
	wholeDone bool     // whole holds the decoded record (nil: it does not decode)
	judgedSet []uint64 // bit per signal index: its matcher was run
	matchSet  []uint64 // ... and matched
}

func (p *prepared) judged(sig *rule.Signal) bool {
	i := sig.Index
	return i/64 < len(p.judgedSet) && p.judgedSet[i/64]&(1<<(i%64)) != 0
}

// judge records sig's verdict (n signals in the set).
func (p *prepared) judge(sig *rule.Signal, matched bool, n int) {
	if p.judgedSet == nil {
		w := (n + 63) / 64
		p.judgedSet, p.matchSet = make([]uint64, w), make([]uint64, w)
	}
	i := sig.Index
	p.judgedSet[i/64] |= 1 << (i % 64)
	if matched {
		p.matchSet[i/64] |= 1 << (i % 64)
	}
}

func (p *prepared) matched(sig *rule.Signal) bool {
	i := sig.Index
	return i/64 < len(p.matchSet) && p.matchSet[i/64]&(1<<(i%64)) != 0
}

// Prepare decodes ev's record and runs its candidate Go matchers ahead of
// Process (pipeline.Preparer). Safe for concurrent use: it reads only what
// New set, and writes only ev.Prepared.
func (e *Engine) Prepare(ev *pipeline.Event) {
	if len(ev.Raw) == 0 {
		if p := e.judgedPrep(ev); p != nil {
			ev.Prepared = p
		}
		return
	}
	byType, anyType := e.set.Candidates(ev.Source, ev.Type)
	if len(byType) == 0 && len(anyType) == 0 {
		return
	}
	p := &prepared{e: e}
	// A lean projection (projection.lean) serves only the matchers'
	// verdicts: they are taken on a borrowed one and nothing is decoded
	// to keep, most of Prepare's cost for a Sigma hit.
	var raw map[string]any
	var env *rule.Env // of the conditions judged here
	lean := false
	needWhole := false // a hit here, or a signal Process decides, reads the whole record
	proj := e.eventProjection(ev.Source, ev.Type, byType, anyType)
	if proj.lean && proj.pp != nil && len(proj.keys) > 0 {
		sc, _ := e.scratch.Get().(*pipeline.ProjScratch)
		if sc == nil {
			sc = new(pipeline.ProjScratch)
		}
		defer e.scratch.Put(sc)
		raw, lean = proj.pp.ProjectBorrowed(ev.Raw, sc)
	}
	if !lean {
		p.proj, p.rawProj = proj.project(ev.Raw)
		raw = p.proj
	}
	for _, g := range [][]*rule.Signal{byType, anyType} {
		for _, sig := range g {
			if len(e.sigRoles[sig.Index]) == 0 {
				continue
			}
			if sig.NeedsRaw && !lean && !p.rawProj && !p.wholeDone {
				p.whole, p.wholeDone = decodeRaw(ev.Raw), true
				raw = p.whole
			}
			// A hit would decode the record whole for its output: that is
			// done below, where it costs the goroutine that applies events
			// nothing, unless this signal is judged here and misses (most
			// candidates of a templated rule's event type do).
			out := e.sigOutputRaw[sig.Index]
			if sig.Match == nil {
				// A condition that reads no entity is decided here too, on
				// the record as the engine would see it (the projection, or
				// the whole record it reads): an error is left to Process,
				// which counts and logs it.
				if !e.sigEntityFree[sig.Index] || lean || (ev.Sample && !sig.Sample) {
					needWhole = needWhole || out
					continue
				}
				if env == nil {
					env = &rule.Env{Event: rule.EventEnv{ID: ev.ID, Source: string(ev.Source), Type: ev.Type, Time: ev.Time, Severity: ev.Severity.String(), Sample: ev.Sample},
						Entity: rule.EntityEnvOf(ev.Entity), Lists: e.set.Lists}
				}
				env.Raw = nil
				if p.rawProj {
					env.Raw = p.proj
				} else if sig.NeedsRaw {
					env.Raw = p.whole
				}
				ok, err := sig.Eval(env)
				if err != nil {
					needWhole = needWhole || out
					continue
				}
				p.judge(sig, ok, len(e.sigRoles))
				needWhole = needWhole || out && ok
				continue
			}
			ok := raw != nil && sig.Match(raw)
			p.judge(sig, ok, len(e.sigRoles))
			needWhole = needWhole || out && ok
		}
	}
	if needWhole && !p.wholeDone {
		p.whole, p.wholeDone = decodeRaw(ev.Raw), true
	}
	ev.Prepared = p
}
