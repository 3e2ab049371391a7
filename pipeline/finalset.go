package pipeline

// finalSet is the latest state of every incident of a run, for Final: one
// allocation per incident, and a slice of pointers that grows cheaply (a
// growing slice of hundreds-of-bytes incidents, like a map of them, was
// copied at every doubling).
type finalSet struct {
	incs  []*Incident
	index map[string]int
	// sorted is all's answer, until the next put.
	sorted []Incident
}

func newFinalSet() *finalSet { return &finalSet{index: map[string]int{}} }

// put records inc as its incident's latest state.
func (f *finalSet) put(inc Incident) {
	f.sorted = nil
	if i, ok := f.index[inc.ID]; ok {
		*f.incs[i] = inc
		return
	}
	f.index[inc.ID] = len(f.incs)
	p := new(Incident)
	*p = inc
	f.incs = append(f.incs, p)
}

// all returns the incidents in SortIncidents order.
func (f *finalSet) all() []Incident {
	if f.sorted != nil {
		return f.sorted
	}
	keys := make([]incidentKey, len(f.incs))
	for i, p := range f.incs {
		keys[i] = keyOf(p, i)
	}
	sortIncidentKeys(keys)
	out := make([]Incident, len(keys))
	for j, k := range keys {
		out[j] = *f.incs[k.at]
	}
	f.sorted = out
	return out
}
