package ruletest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// fieldDiff is one field that differs between an expected and an actual incident.
type fieldDiff struct {
	Field    string
	Expected string
	Got      string
}

func (d fieldDiff) String() string {
	return fmt.Sprintf("%s: expected %s, got %s", d.Field, d.Expected, d.Got)
}

// expandExpected substitutes variables in every string of an expected incident.
func expandExpected(e ExpectedIncident, v vars) (ExpectedIncident, error) {
	var err error
	str := func(p *string) *string {
		if p == nil || err != nil {
			return p
		}
		s, e2 := v.expand(*p)
		if e2 != nil {
			err = e2
			return p
		}
		return &s
	}
	strs := func(p *[]string) *[]string {
		if p == nil || err != nil {
			return p
		}
		out := make([]string, len(*p))
		for i, s := range *p {
			out[i] = *str(&s)
		}
		return &out
	}
	out := e
	out.Rule, out.Severity, out.Status = str(e.Rule), str(e.Severity), str(e.Status)
	out.Title, out.TitleContains = str(e.Title), str(e.TitleContains)
	out.Summary, out.SummaryContains = str(e.Summary), str(e.SummaryContains)
	out.Steps, out.Mitre, out.Tags = strs(e.Steps), strs(e.Mitre), strs(e.Tags)
	if e.Key != nil {
		out.Key = make(map[string]string, len(e.Key))
		for k, val := range e.Key {
			out.Key[k] = *str(&val)
		}
	}
	if e.Events != nil && e.Events.IDs != nil {
		ids := make([]string, len(e.Events.IDs))
		for i, s := range e.Events.IDs {
			ids[i] = *str(&s)
		}
		out.Events = &EventsExpect{N: e.Events.N, IDs: ids}
	}
	if e.Fields != nil {
		f, e2 := v.expandAny(normalizeYAML(map[string]any(e.Fields)))
		if e2 != nil && err == nil {
			err = e2
		}
		if m, ok := f.(map[string]any); ok {
			out.Fields = m
		}
	}
	return out, err
}

// diffIncident lists the fields of exp that inc does not satisfy.
func diffIncident(exp *ExpectedIncident, inc *pipeline.Incident, start time.Time) []fieldDiff {
	var d []fieldDiff
	add := func(field string, expected, got any) {
		d = append(d, fieldDiff{field, show(expected), show(got)})
	}
	if exp.Rule != nil && *exp.Rule != inc.Rule {
		add("rule", *exp.Rule, inc.Rule)
	}
	if exp.Severity != nil && !strings.EqualFold(*exp.Severity, inc.Severity.String()) {
		add("severity", *exp.Severity, inc.Severity.String())
	}
	if exp.Status != nil && *exp.Status != string(inc.Status) {
		add("status", *exp.Status, string(inc.Status))
	}
	if exp.Key != nil && !maps.Equal(exp.Key, inc.Key) && !(len(exp.Key) == 0 && len(inc.Key) == 0) {
		add("key", exp.Key, inc.Key)
	}
	if exp.Title != nil && *exp.Title != inc.Title {
		add("title", *exp.Title, inc.Title)
	}
	if exp.TitleContains != nil && !strings.Contains(inc.Title, *exp.TitleContains) {
		add("title_contains", *exp.TitleContains, inc.Title)
	}
	if exp.Summary != nil && *exp.Summary != inc.Summary {
		add("summary", *exp.Summary, inc.Summary)
	}
	if exp.SummaryContains != nil && !strings.Contains(inc.Summary, *exp.SummaryContains) {
		add("summary_contains", *exp.SummaryContains, inc.Summary)
	}
	if exp.Count != nil && *exp.Count != inc.Count {
		add("count", *exp.Count, inc.Count)
	}
	if exp.Events != nil {
		if exp.Events.N != nil && *exp.Events.N != len(inc.Events) {
			add("events", *exp.Events.N, len(inc.Events))
		}
		if exp.Events.IDs != nil {
			got := make([]string, len(inc.Events))
			for i, e := range inc.Events {
				got[i] = e.ID
			}
			if !slices.Equal(exp.Events.IDs, got) {
				add("events", exp.Events.IDs, got)
			}
		}
	}
	if exp.Steps != nil {
		if got := stepNames(inc); !slices.Equal(*exp.Steps, got) {
			add("steps", *exp.Steps, got)
		}
	}
	if exp.FirstSeen != nil {
		if want := start.Add(time.Duration(*exp.FirstSeen)); !want.Equal(inc.FirstSeen) {
			add("first_seen", exp.FirstSeen.String(), formatOffset(inc.FirstSeen.Sub(start)))
		}
	}
	if exp.LastSeen != nil {
		if want := start.Add(time.Duration(*exp.LastSeen)); !want.Equal(inc.LastSeen) {
			add("last_seen", exp.LastSeen.String(), formatOffset(inc.LastSeen.Sub(start)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(exp.Fields)) {
		got, ok := inc.Fields[k]
		if !ok {
			add("fields."+k, exp.Fields[k], "(absent)")
			continue
		}
		if jsonString(exp.Fields[k]) != jsonString(got) {
			add("fields."+k, exp.Fields[k], got)
		}
	}
	if exp.Mitre != nil && !slices.Equal(*exp.Mitre, nonNil(inc.Mitre)) {
		add("mitre", *exp.Mitre, inc.Mitre)
	}
	if exp.Tags != nil && !slices.Equal(*exp.Tags, nonNil(inc.Tags)) {
		add("tags", *exp.Tags, inc.Tags)
	}
	return d
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// stepNames returns the distinct evidence step names in first-appearance order.
func stepNames(inc *pipeline.Incident) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, e := range inc.Events {
		if e.Step == "" || seen[e.Step] {
			continue
		}
		seen[e.Step] = true
		out = append(out, e.Step)
	}
	return out
}

// jsonString renders a value canonically (numbers as JSON numbers, maps sorted).
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var x any
	if json.Unmarshal(b, &x) != nil {
		return string(b)
	}
	b, _ = json.Marshal(x)
	return string(b)
}

func show(v any) string {
	switch t := v.(type) {
	case string:
		return fmt.Sprintf("%q", t)
	case int:
		return fmt.Sprint(t)
	}
	return jsonString(v)
}

// comparison is the outcome of one expectation.
type comparison struct {
	Pairs      []pairDiff // expected matched to an actual incident with differences
	Missing    []int      // expected incidents with no actual left
	Unexpected []*pipeline.Incident
}

type pairDiff struct {
	Expected int
	Incident *pipeline.Incident
	Diffs    []fieldDiff
}

func (c comparison) ok() bool {
	return len(c.Pairs) == 0 && len(c.Missing) == 0 && len(c.Unexpected) == 0
}

// compareSet matches expected to actual incidents irrespective of order:
// first a perfect matching is searched (exact pairs), then the leftovers
// are paired by fewest differing fields so that the report can show a
// per-field diff.
func compareSet(exp []ExpectedIncident, got []*pipeline.Incident, start time.Time) comparison {
	diffs := make([][][]fieldDiff, len(exp))
	for i := range exp {
		diffs[i] = make([][]fieldDiff, len(got))
		for j, inc := range got {
			diffs[i][j] = diffIncident(&exp[i], inc, start)
		}
	}
	// Maximum matching on exact pairs (augmenting paths; sets are small).
	matchOfGot := make([]int, len(got))
	for j := range matchOfGot {
		matchOfGot[j] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j := range got {
			if len(diffs[i][j]) != 0 || seen[j] {
				continue
			}
			seen[j] = true
			if matchOfGot[j] < 0 || try(matchOfGot[j], seen) {
				matchOfGot[j] = i
				return true
			}
		}
		return false
	}
	matched := make([]bool, len(exp))
	for i := range exp {
		if try(i, make([]bool, len(got))) {
			matched[i] = true
		}
	}
	for j := range got {
		if matchOfGot[j] >= 0 {
			matched[matchOfGot[j]] = true
		}
	}
	var c comparison
	usedGot := make([]bool, len(got))
	for j := range got {
		usedGot[j] = matchOfGot[j] >= 0
	}
	for i := range exp {
		if matched[i] {
			continue
		}
		best := -1
		for j := range got {
			if usedGot[j] {
				continue
			}
			if best < 0 || len(diffs[i][j]) < len(diffs[i][best]) {
				best = j
			}
		}
		if best < 0 {
			c.Missing = append(c.Missing, i)
			continue
		}
		usedGot[best] = true
		c.Pairs = append(c.Pairs, pairDiff{Expected: i, Incident: got[best], Diffs: diffs[i][best]})
	}
	for j := range got {
		if !usedGot[j] {
			c.Unexpected = append(c.Unexpected, got[j])
		}
	}
	return c
}

// describeIncident is a one-line summary of an actual incident.
func describeIncident(inc *pipeline.Incident, start time.Time) string {
	ids := make([]string, len(inc.Events))
	for i, e := range inc.Events {
		ids[i] = e.ID
	}
	return fmt.Sprintf("rule=%s severity=%s status=%s key=%s count=%d events=%d %v steps=%v first_seen=%s title=%q",
		inc.Rule, inc.Severity, inc.Status, jsonString(inc.Key), inc.Count, len(inc.Events), ids,
		stepNames(inc), formatOffset(inc.FirstSeen.Sub(start)), inc.Title)
}

// describeExpected renders an expected incident compactly (only set fields).
func describeExpected(e *ExpectedIncident) string {
	var parts []string
	addS := func(k string, p *string) {
		if p != nil {
			parts = append(parts, fmt.Sprintf("%s=%q", k, *p))
		}
	}
	addS("rule", e.Rule)
	addS("severity", e.Severity)
	addS("status", e.Status)
	if e.Key != nil {
		parts = append(parts, "key="+jsonString(e.Key))
	}
	addS("title", e.Title)
	addS("title_contains", e.TitleContains)
	addS("summary", e.Summary)
	addS("summary_contains", e.SummaryContains)
	if e.Count != nil {
		parts = append(parts, fmt.Sprintf("count=%d", *e.Count))
	}
	if e.Events != nil {
		if e.Events.N != nil {
			parts = append(parts, fmt.Sprintf("events=%d", *e.Events.N))
		} else {
			parts = append(parts, fmt.Sprintf("events=%v", e.Events.IDs))
		}
	}
	if e.Steps != nil {
		parts = append(parts, fmt.Sprintf("steps=%v", *e.Steps))
	}
	if len(parts) == 0 {
		return "(any incident)"
	}
	return strings.Join(parts, " ")
}

// sortIncidents orders incidents for stable reports: first seen, then id.
func sortIncidents(xs []*pipeline.Incident) {
	sort.SliceStable(xs, func(i, j int) bool {
		if !xs[i].FirstSeen.Equal(xs[j].FirstSeen) {
			return xs[i].FirstSeen.Before(xs[j].FirstSeen)
		}
		return xs[i].ID < xs[j].ID
	})
}
