package pipeline

// finalSet is the latest state of every incident of a run, for Final: the
// incidents in a slice (updated in place) and their index by ID, so that
// a replay's hundreds of thousands of incidents are neither rehashed as
// map values while they come nor copied out of a map to be sorted.
type finalSet struct {
	incs  []Incident
	index map[string]int
	// sorted: incs are in SortIncidents order (until the next put).
	sorted bool
}

func newFinalSet() *finalSet { return &finalSet{index: map[string]int{}} }

// put records inc as its incident's latest state.
func (f *finalSet) put(inc Incident) {
	f.sorted = false
	if i, ok := f.index[inc.ID]; ok {
		f.incs[i] = inc
		return
	}
	f.index[inc.ID] = len(f.incs)
	f.incs = append(f.incs, inc)
}

// all returns the incidents in SortIncidents order, sorted in place.
func (f *finalSet) all() []Incident {
	if f.sorted {
		return f.incs
	}
	f.sorted = true
	SortIncidents(f.incs)
	for i := range f.incs {
		f.index[f.incs[i].ID] = i
	}
	return f.incs
}
