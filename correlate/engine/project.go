package engine

import (
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Decoding a whole raw record into a map costs ~5 µs for a 1.5 KB
// CloudTrail record; signals usually read three or four top-level keys.
// So the engine works out, per signal, which top-level keys of `raw` its
// expressions can read, and for each event decodes only the union of the
// keys of its candidate signals. Rules that need the whole record (output
// templates, `by` expressions, exceptions) still get it, through ensureRaw.

// projection is the set of top-level raw keys a group of signals reads;
// full means "decode everything" (a signal uses raw dynamically).
type projection struct {
	keys []string
	full bool
	// paths are the key paths read below the top level, when known (a
	// Sigma matcher's); a key without paths is read whole. pp projects
	// onto keys and paths (unions only).
	paths [][]string
	pp    *pipeline.PathProjection
	// lean: every signal in the union is a Go matcher without fields and
	// no rule it feeds reads raw per event, so the projection only serves
	// the matchers' verdicts: Prepare takes them on a borrowed projection
	// and keeps none (whatever reads the record later decodes it).
	lean bool
}

type rawVisitor struct {
	seen    map[string]bool
	full    bool
	covered map[*ast.IdentifierNode]bool
}

func (v *rawVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "raw" {
			if s, ok := n.Property.(*ast.StringNode); ok {
				v.seen[s.Value] = true
				if v.covered == nil {
					v.covered = map[*ast.IdentifierNode]bool{}
				}
				v.covered[id] = true
				return
			}
			v.full = true
		}
	case *ast.IdentifierNode:
		// ast.Walk visits children before their parent: a raw identifier
		// is marked uncovered here and covered by its parent member node
		// if that is raw.<constant>; rawKeysChecked settles at the end.
		if n.Value == "raw" {
			if v.covered == nil {
				v.covered = map[*ast.IdentifierNode]bool{}
			}
			if _, ok := v.covered[n]; !ok {
				v.covered[n] = false
			}
		}
	}
}

// signalProjection is the projection of one signal (where + fields).
func signalProjection(sig *rule.Signal) projection {
	if sig.Match != nil {
		// A Go matcher (Sigma) names the top-level keys it reads, unless it
		// searches keywords in every value.
		if sig.MatchFullScan {
			return projection{full: true}
		}
		p := rawKeysChecked(fieldProgs(sig)...)
		if p.full {
			return p
		}
		keys := append(slices.Clone(p.keys), sig.MatchFields...)
		slices.Sort(keys)
		out := projection{keys: slices.Compact(keys)}
		if sig.MatchPaths != nil {
			// The fields' keys whole, the matcher's paths as they are.
			for _, k := range p.keys {
				out.paths = append(out.paths, []string{k})
			}
			out.paths = append(out.paths, sig.MatchPaths...)
		}
		return out
	}
	return rawKeysChecked(append([]*vm.Program{sig.Where}, fieldProgs(sig)...)...)
}

func fieldProgs(sig *rule.Signal) []*vm.Program {
	var progs []*vm.Program
	for _, f := range sig.Fields {
		progs = append(progs, f.Prog)
	}
	return progs
}

// rawKeysChecked returns the top-level keys of `raw` that programs read, or
// full when one of them uses `raw` other than as raw.<constant> (raw[x],
// raw passed to a function, ...).
func rawKeysChecked(progs ...*vm.Program) projection {
	seen := map[string]bool{}
	for _, prog := range progs {
		if prog == nil {
			continue
		}
		node := prog.Node()
		v := &rawVisitor{seen: seen}
		ast.Walk(&node, v)
		if v.full {
			return projection{full: true}
		}
		for _, ok := range v.covered {
			if !ok {
				return projection{full: true}
			}
		}
	}
	var p projection
	for k := range seen {
		p.keys = append(p.keys, k)
	}
	slices.Sort(p.keys)
	return p
}

// eventProjection returns the union projection of the candidate signals
// of an event type, cached per (source, type). Safe for concurrent use
// (Prepare calls it): it reads only what New set.
func (e *Engine) eventProjection(src pipeline.Source, typ string, groups ...[]*rule.Signal) projection {
	ck := string(src) + "\x00" + typ
	if p, ok := e.projCache.Load(ck); ok {
		return p.(projection)
	}
	seen := map[string]bool{}
	p := projection{lean: true}
	var paths [][]string // every part's: nested where known, else whole keys
	for _, sigs := range groups {
		for _, sig := range sigs {
			if len(e.sigRoles[sig.Index]) == 0 {
				continue
			}
			// The rules a signal feeds read raw per event (their `by`,
			// step `where`s, threshold field) whether or not the signal
			// itself does: their keys are part of the projection either way.
			for _, rr := range e.sigRoles[sig.Index] {
				if rp := e.ruleProj[rr.rule]; rp.full || len(rp.keys) > 0 {
					p.lean = false
				}
			}
			add := func(sp projection) {
				if sp.full {
					p.full = true
				}
				for _, k := range sp.keys {
					seen[k] = true
				}
				if sp.paths != nil {
					paths = append(paths, sp.paths...)
				} else {
					for _, k := range sp.keys {
						paths = append(paths, []string{k}) // read whole
					}
				}
			}
			if sig.NeedsRaw {
				if sig.Match == nil || len(sig.Fields) > 0 {
					p.lean = false
				}
				add(e.sigProj[sig.Index])
			}
			for _, rr := range e.sigRoles[sig.Index] {
				add(e.ruleProj[rr.rule])
			}
		}
	}
	if p.full {
		p.lean = false
	} else {
		for k := range seen {
			p.keys = append(p.keys, k)
		}
		slices.Sort(p.keys)
		p.pp = pipeline.NewPathProjection(paths)
	}
	if e.projCached.Load() < 4096 { // event types are few; stay bounded anyway
		if _, loaded := e.projCache.LoadOrStore(ck, p); !loaded {
			e.projCached.Add(1)
		}
	}
	return p
}

// ruleProjection is what a rule's own per-event expressions read of raw:
// `by` expressions, step `where`s and the threshold field. An event's
// projection includes it for the rules its signals feed, so that keying
// and narrowing a hit need no full decode either.
func ruleProjection(r *rule.Rule) projection {
	var progs []*vm.Program
	for _, kf := range r.By {
		progs = append(progs, kf.Expr)
	}
	steps := func(sts ...*rule.Step) {
		for _, st := range sts {
			if st != nil {
				progs = append(progs, st.Where)
			}
		}
	}
	steps(r.Match)
	if r.Threshold != nil {
		steps(&r.Threshold.Step)
		progs = append(progs, r.Threshold.Field)
	}
	if r.Sequence != nil {
		for i := range r.Sequence.Steps {
			steps(&r.Sequence.Steps[i])
		}
	}
	if r.Temporal != nil {
		for i := range r.Temporal.Signals {
			steps(&r.Temporal.Signals[i])
		}
	}
	if r.Metric != nil {
		steps(r.Metric.Join)
	}
	return rawKeysChecked(progs...)
}

// needRaw makes sure env.Raw holds what the current event's signals and
// their rules' per-event expressions read: the projection already does
// (eventProjection includes ruleProjection), else a full decode.
func (e *Engine) needRaw() {
	if !e.rawProj {
		e.ensureRaw()
	}
}

// SignalRawKeys returns the top-level keys of the raw record that a
// signal reads, or all when it reads the record as a whole (what `replay
// --explain` shows of the record a signal matched).
func SignalRawKeys(sig *rule.Signal) (keys []string, all bool) {
	p := signalProjection(sig)
	return p.keys, p.full
}
