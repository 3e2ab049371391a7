package pipeline

import "sync"

// finalSet is the latest state of every incident of a run, for Final. The
// incidents live in slabs (a growing slice of hundreds-of-bytes incidents,
// like a map of them, was copied at every doubling; one allocation each
// scattered them over the heap), and each one's sort key is kept beside
// it as it is put: at the end of a replay the incidents are cold, and
// reading their keys through pointers cost more than sorting.
type finalSet struct {
	slabs [][]Incident
	keys  []incidentKey // keys[i].at == i: where incident i is in slabs
	index map[string]int
	// sorted is all's answer, until the next put.
	sorted []Incident
}

// slabLen is how many incidents one slab holds.
const slabLen = 512

func newFinalSet() *finalSet { return &finalSet{index: map[string]int{}} }

func (f *finalSet) at(i int) *Incident { return &f.slabs[i/slabLen][i%slabLen] }

// put records inc as its incident's latest state.
func (f *finalSet) put(inc Incident) {
	f.sorted = nil
	if i, ok := f.index[inc.ID]; ok {
		p := f.at(i)
		*p = inc
		f.keys[i] = keyOf(p, i)
		return
	}
	i := len(f.keys)
	f.index[inc.ID] = i
	if i%slabLen == 0 {
		f.slabs = append(f.slabs, make([]Incident, 0, slabLen))
	}
	s := &f.slabs[len(f.slabs)-1]
	*s = append(*s, inc)
	f.keys = append(f.keys, keyOf(&(*s)[len(*s)-1], i))
}

// all returns the incidents in SortIncidents order.
func (f *finalSet) all() []Incident {
	if f.sorted != nil {
		return f.sorted
	}
	keys := append([]incidentKey(nil), f.keys...)
	sortIncidentKeys(keys)
	out := make([]Incident, len(keys))
	// Copied in parallel: most of the time goes to faulting in out's
	// pages and reading cold incidents, not to the copy itself.
	const parts = 4
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(keys)/parts, (p+1)*len(keys)/parts
		wg.Go(func() {
			for j := lo; j < hi; j++ {
				out[j] = *f.at(keys[j].at)
			}
		})
	}
	wg.Wait()
	f.sorted = out
	return out
}
