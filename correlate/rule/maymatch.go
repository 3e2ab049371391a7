package rule

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ecscorr/ecscorr/correlate/sigma"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Replay drops, before it copies, sorts and correlates them, the records no
// signal can match. The event type alone decides that for type-indexed
// signals; Sigma detections (Go matchers over the raw record) that
// constrain no event type would otherwise keep every CloudTrail record, so
// MayMatch runs them on the record's bytes while it is read, in parallel,
// decoding only the key paths they read (from the members the reader
// indexed, when it did). A record kept is evaluated
// again by the engine in event-time order: the matchers are pure functions
// of the record, so the answer is the same.

// matchPlan is how MayMatch decides for one (source, type).
type matchPlan struct {
	undecided bool                     // some candidate is not a raw-record matcher: keep
	sigs      []*Signal                // the candidate matchers
	proj      *pipeline.PathProjection // onto what they read
	full      bool                     // one searches every value: decode the whole record
	// screens, when every candidate is a Sigma detection with a screen,
	// screens them together.
	screens *sigma.ScreenSet
}

type planKey struct {
	src pipeline.Source
	typ string
}

type matchPlans struct {
	// m maps planKey to *matchPlan: read on every record by every reader
	// goroutine, written once per event type, which is what sync.Map is
	// for (a read lock's shared counter costs more than the lookup).
	m       sync.Map
	n       atomic.Int64 // entries, bounded like the candidate cache
	scratch sync.Pool    // of *mayScratch
	// keys interns the screen keys of every plan's sigma.ScreenSet, so
	// that what a reader's memo found in a value serves every event type.
	keysMu sync.Mutex
	keys   *sigma.ScreenKeys
}

// mayScratch is what one MayMatch call works in.
type mayScratch struct {
	proj pipeline.ProjScratch
	raw  sigma.Raw
	pass []*Signal
	ok   []bool
	// sub are the projections of subProjection.
	sub map[subKey]*pipeline.PathProjection
	// plans are the plans this scratch's caller met, unshared, by source
	// then type: a plain map lookup costs a third of sync.Map's, and a
	// scratch stays with one P; a string key hashes faster than a struct
	// of two, and a reader's records are mostly of one source (last).
	plans   map[pipeline.Source]map[string]*matchPlan
	lastSrc pipeline.Source
	last    map[string]*matchPlan
	nPlans  int
}

// MayMatch reports whether some signal could match a record of this source
// and type: false only when every candidate signal is a Sigma matcher and
// none matches. Safe for concurrent use.
func (s *Set) MayMatch(src pipeline.Source, typ string, rec pipeline.RawRecord) bool {
	return s.judge(src, typ, rec, false).Keep
}

// Judge is MayMatch's answer with, when every candidate signal of the
// record is a matcher, the verdict of each (Verdict.Matched, bit i for
// signal i, By the set's Fingerprint): the engine then need not run them
// again, nor keep the record when nothing else reads it (that, Judge
// does not know: the caller sets NoRaw). Safe for concurrent use.
func (s *Set) Judge(src pipeline.Source, typ string, rec pipeline.RawRecord) pipeline.Verdict {
	return s.judge(src, typ, rec, true)
}

func (s *Set) judge(src pipeline.Source, typ string, rec pipeline.RawRecord, all bool) pipeline.Verdict {
	sc, _ := s.plans.scratch.Get().(*mayScratch)
	if sc == nil {
		sc = &mayScratch{plans: map[pipeline.Source]map[string]*matchPlan{}}
		sc.raw.UseMemo(sigma.NewMemo())
	}
	defer s.plans.scratch.Put(sc)
	if sc.last == nil || sc.lastSrc != src {
		if sc.plans[src] == nil {
			sc.plans[src] = map[string]*matchPlan{}
		}
		sc.lastSrc, sc.last = src, sc.plans[src]
	}
	p := sc.last[typ]
	if p == nil {
		p = s.plan(src, typ)
		if sc.nPlans < maxMerged {
			sc.last[strings.Clone(typ)] = p // typ may point into a record
			sc.nPlans++
		}
	}
	keep := pipeline.Verdict{Keep: true}
	switch {
	case p.undecided:
		return keep
	case len(p.sigs) == 0:
		return pipeline.Verdict{}
	}
	sigs, proj := p.sigs, p.proj
	if p.screens != nil {
		// Most records fail every screen: drop them on their bytes.
		sc.raw.Reset(rec)
		sigs = sc.pass[:0]
		sc.ok = slices.Grow(sc.ok[:0], len(p.sigs))[:len(p.sigs)]
		p.screens.Pass(&sc.raw, sc.ok)
		for i, sig := range p.sigs {
			if sc.ok[i] {
				sigs = append(sigs, sig)
			}
		}
		sc.pass = sigs[:0]
		if len(sigs) == 0 {
			return pipeline.Verdict{}
		}
		proj = sc.subProjection(p, sc.ok, len(sigs))
	}
	var m map[string]any
	if p.full {
		if pipeline.UnmarshalRecord(rec.Data, &m) != nil {
			return keep // let the decoder report it
		}
	} else {
		var ok bool
		if rec.Members != nil {
			m, ok = proj.ProjectMembers(rec.Members, &sc.proj)
		} else {
			m, ok = proj.ProjectBorrowed(rec.Data, &sc.proj)
		}
		if !ok {
			return keep
		}
	}
	// The matchers are pure: they keep nothing of m, whose strings point
	// into the record.
	var matched []uint64
	for _, sig := range sigs {
		if !sig.Match(m) {
			continue
		}
		if !all {
			return keep
		}
		if matched == nil {
			matched = make([]uint64, (len(s.Signals)+63)/64)
		}
		matched[sig.Index/64] |= 1 << (sig.Index % 64)
	}
	if matched == nil {
		return pipeline.Verdict{}
	}
	return pipeline.Verdict{Keep: true, Matched: matched, By: s.fingerprint}
}

// matchPaths are the key paths sig's matcher reads.
func (sig *Signal) matchPaths() [][]string {
	if sig.MatchPaths != nil {
		return sig.MatchPaths
	}
	paths := make([][]string, len(sig.MatchFields))
	for i, k := range sig.MatchFields {
		paths[i] = []string{k}
	}
	return paths
}

// subProjection is the projection onto what the candidates of p that
// passed its screens read (pass[i]: p.sigs[i] did), kept in sc: a record
// that passes one detection's screen (an AssumedRole identity: a quarter
// of CloudTrail) need not decode what every detection of its type reads.
func (sc *mayScratch) subProjection(p *matchPlan, pass []bool, n int) *pipeline.PathProjection {
	if n == len(p.sigs) || len(p.sigs) > 64 {
		return p.proj
	}
	var mask uint64
	for i, ok := range pass {
		if ok {
			mask |= 1 << i
		}
	}
	k := subKey{p, mask}
	if pp := sc.sub[k]; pp != nil {
		return pp
	}
	var paths [][]string
	for i, sig := range p.sigs {
		if pass[i] {
			paths = append(paths, sig.matchPaths()...)
		}
	}
	pp := pipeline.NewPathProjection(paths)
	if len(sc.sub) >= maxMerged {
		clear(sc.sub) // a bound, never met by real rule sets
	}
	if sc.sub == nil {
		sc.sub = map[subKey]*pipeline.PathProjection{}
	}
	sc.sub[k] = pp
	return pp
}

type subKey struct {
	p    *matchPlan
	mask uint64
}

func (s *Set) plan(src pipeline.Source, typ string) *matchPlan {
	ck := planKey{src, typ}
	if p, ok := s.plans.m.Load(ck); ok {
		return p.(*matchPlan)
	}
	p := &matchPlan{}
	screened := true
	var paths [][]string
	byType, anyType := s.Candidates(src, typ)
	for _, sig := range slices.Concat(byType, anyType) {
		if sig.Match == nil {
			p.undecided = true
			break
		}
		p.sigs = append(p.sigs, sig)
		p.full = p.full || sig.MatchFullScan
		screened = screened && sig.Sigma != nil
		paths = append(paths, sig.matchPaths()...)
	}
	p.proj = pipeline.NewPathProjection(paths)
	if screened && !p.undecided && len(p.sigs) > 0 {
		ms := make([]*sigma.Matcher, len(p.sigs))
		for i, sig := range p.sigs {
			ms[i] = sig.Sigma
		}
		s.plans.keysMu.Lock()
		if s.plans.keys == nil {
			s.plans.keys = sigma.NewScreenKeys()
		}
		p.screens = sigma.NewScreenSet(ms, s.plans.keys)
		s.plans.keysMu.Unlock()
	}
	ck.typ = strings.Clone(typ) // typ may point into a record being read
	if s.plans.n.Load() < maxMerged {
		if _, loaded := s.plans.m.LoadOrStore(ck, p); !loaded {
			s.plans.n.Add(1)
		}
	}
	return p
}
