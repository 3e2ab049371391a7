package engine

import (
	"math/bits"
	"text/template"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

// A reader that judged a record's matchers (rule.Set.Judge) hands the
// verdicts on with the event (Event.Judged); when no rule that uses a
// matched signal reads the record past the match, the event need not keep
// its record at all (RecordNeeded): most of what replay keeps for Sigma
// rules is records only their matchers read.

// rawFree reports whether a hit of sig is handled without its record: a
// matcher without fields whose every rule is a plain match (no key, no
// step condition, dedup key, exception, override, output field, resolve
// or chain, and titles without template actions).
func (e *Engine) rawFree(sig *rule.Signal) bool {
	if sig.Match == nil || len(sig.Fields) > 0 {
		return false
	}
	for _, rr := range e.sigRoles[sig.Index] {
		r := e.rules[rr.rule].r
		if rr.kind != roleStep || r.Kind != rule.KindMatch || r.Match == nil || r.Match.Where != nil ||
			len(r.By) > 0 || r.DedupKey != nil || len(r.Exceptions) > 0 || len(r.Overrides) > 0 ||
			len(r.Fields) > 0 || r.Resolve != nil || r.Derived != nil || r.Silent || templated(r) {
			return false
		}
	}
	return true
}

// templated reports whether one of r's output texts has template actions.
func templated(r *rule.Rule) bool {
	for _, t := range []*template.Template{r.Title, r.Summary, r.Remediation} {
		if _, ok := rule.LiteralText(t); !ok {
			return true
		}
	}
	return false
}

// outputReadsRecord reports whether a hit of sig builds an output
// environment, which holds the whole decoded record: a rule that uses it
// renders a template with actions, or has output fields, a dedup key
// template, severity overrides or a resolve condition. Prepare then
// decodes the record ahead, off the goroutine that applies events.
func (e *Engine) outputReadsRecord(sig *rule.Signal) bool {
	for _, rr := range e.sigRoles[sig.Index] {
		r := e.rules[rr.rule].r
		if len(r.Fields) > 0 || r.DedupKey != nil || len(r.Overrides) > 0 || (r.Resolve != nil && r.Resolve.Closes != nil) || templated(r) {
			return true
		}
	}
	return false
}

// RecordNeeded reports whether an event whose candidate matchers matched
// as matched says (Event.Judged, by this engine's rule set) must keep its
// record. Safe for concurrent use.
func (e *Engine) RecordNeeded(matched []uint64) bool {
	for w, word := range matched {
		for ; word != 0; word &= word - 1 {
			i := w*64 + bits.TrailingZeros64(word)
			if i >= len(e.sigRawFree) || !e.sigRawFree[i] {
				return true
			}
		}
	}
	return false
}

// judgedPrep is the prepared form of an event the reader judged, for this
// engine's set: every candidate matcher judged, the matched ones as the
// reader found. nil when ev was not judged by this set.
func (e *Engine) judgedPrep(ev *pipeline.Event) *prepared {
	if ev.Judged == nil || ev.JudgedBy == 0 || ev.JudgedBy != e.set.Fingerprint() {
		return nil
	}
	n := (len(e.sigRoles) + 63) / 64
	p := &prepared{e: e, judgedSet: make([]uint64, n), matchSet: make([]uint64, n)}
	byType, anyType := e.set.Candidates(ev.Source, ev.Type)
	for _, g := range [][]*rule.Signal{byType, anyType} {
		for _, sig := range g {
			if sig.Match == nil {
				return nil // not judged after all: the reader would have kept it whole
			}
			p.judgedSet[sig.Index/64] |= 1 << (sig.Index % 64)
		}
	}
	copy(p.matchSet, ev.Judged)
	return p
}

// readsEntity reports whether a compiled condition reads `entity` (or the
// whole environment, $env): the Runner resolves an event's task after
// Prepare, so only a condition that does not may be judged there.
func readsEntity(p *vm.Program) bool {
	node := p.Node()
	if node == nil {
		return true
	}
	v := &entityFinder{}
	ast.Walk(&node, v)
	return v.found
}

type entityFinder struct{ found bool }

func (f *entityFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && (id.Value == "entity" || id.Value == "$env") {
		f.found = true
	}
}
