package engine

import (
	"fmt"
	"slices"
	"strings"
)

// SummaryLines renders the counters for a human report, one line per
// topic, skipping what is zero.
func (s Stats) SummaryLines() []string {
	var out []string
	kv := func(m map[string]uint64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, m[k])
		}
		return strings.Join(parts, ", ")
	}
	add := func(label string, m map[string]uint64) {
		if len(m) > 0 {
			out = append(out, label+": "+kv(m))
		}
	}
	out = append(out, fmt.Sprintf("engine: %d events, %d late, %d open incidents, %d keys with state", s.Events, s.LateEvents, s.OpenIncidents, s.Keys))
	add("signal hits", s.SignalHits)
	add("incidents by rule", s.Incidents)
	add("dedup updates", s.Updated)
	add("resolved", s.Resolved)
	add("suppressed by exceptions", s.Suppressed)
	add("events without key", s.NoKey)
	add("key cap overflows", s.KeyCapOverflows)
	add("evidence dropped", s.EvidenceDropped)
	add("window overflows", s.WindowOverflows)
	if s.DecidedAtEnd > 0 {
		out = append(out, fmt.Sprintf("windows open at the end of the input, decided on the events they held: %d", s.DecidedAtEnd))
	}
	if s.EvalErrors+s.TemplateErrors+s.RawErrors > 0 {
		out = append(out, fmt.Sprintf("errors: %d expression, %d template, %d raw decode", s.EvalErrors, s.TemplateErrors, s.RawErrors))
	}
	return out
}
