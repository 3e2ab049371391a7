// Package cases groups incidents into attack cases: the incidents that
// concern one task, or are linked through it, become one case with one
// storyline. It is a view over incidents (the replay report, the HTML
// report); it changes no incident.
//
// Linking rules. Two incidents share a link key when they
//
//   - concern the same task (key or field task_arn),
//   - concern the same task definition (key or field task_definition_arn),
//     or one names a task definition and the other is on a task that runs
//     it (Options.TaskDefinitions): a drift incident on a task definition
//     joins the runtime alerts of its tasks. Two tasks of one task
//     definition do not join through it alone (replicas of a service stay
//     apart until their task definition has an incident),
//   - name the same principal that acted on a task (field exec_principal,
//     principal; key principal): who exec'd into a task joins it to the
//     other tasks they touched,
//   - or keep the same event as evidence (source and event id).
//
// Incidents sharing a key join when the later one starts at most
// Options.Window after the earlier ones sharing that key were last seen
// (single linkage: a chain of incidents each within the window of the
// previous joins). Joins are transitive (union-find): a case is a
// connected component. Account-, region- or cluster-wide incidents with no
// such key (a trail stopped, a security group opened) are cases of their
// own: linking on an account would put everything in one case.
//
// Case ids. A case's id is a hash of its earliest incident's id (in
// pipeline.SortIncidents order). Incidents that join later (a later
// replay window, a live run) keep the id; only an incident that starts
// before every member, or a merge of two cases, changes it, and a merge
// keeps the id of the earlier case.
package cases

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// DefaultWindow is how far apart in time linked incidents may be.
const DefaultWindow = 24 * time.Hour

// Options configure Build.
type Options struct {
	// Window: incidents sharing a link key join when the later one starts
	// at most this long after the earlier ones were last seen (default
	// DefaultWindow; the boundary itself joins).
	Window time.Duration
	// TaskDefinitions maps task ARNs to their task definition ARNs, as the
	// inputs told (ECS task state changes, GuardDuty findings, RunTask).
	// Optional: without it only incidents that name a task definition
	// link through it.
	TaskDefinitions map[string]string
}

// Case is one attack: linked incidents and their storyline.
type Case struct {
	ID string `json:"id"`
	// Title is the title of the most severe incident (the earliest of
	// equals); Subject says what the case is about ("task
	// payments-prod/4c1f…", "taskdef debug-tools:1", the key of an
	// account-wide incident).
	Title    string                  `json:"title"`
	Subject  string                  `json:"subject"`
	Severity pipeline.Severity       `json:"severity"`
	Status   pipeline.IncidentStatus `json:"status"` // open while any incident is
	// FirstSeen and LastSeen span every member, resolution included.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Tactics covered, in kill-chain order; Techniques are the members'
	// MITRE ids, sorted.
	Tactics         []string `json:"tactics"`
	Techniques      []string `json:"techniques"`
	Tasks           []string `json:"tasks"`
	TaskDefinitions []string `json:"task_definitions"`
	Accounts        []string `json:"accounts"`
	Principals      []string `json:"principals"`
	Rules           []string `json:"rules"`
	// Links are the link keys that joined members ("task:<arn>",
	// "taskdef:<arn>", "principal:<arn>", "event:<source>/<id>"); empty
	// for a case of one incident.
	Links     []string `json:"links"`
	Incidents []Member `json:"incidents"`
	Steps     []Step   `json:"steps"`
}

// Member is an incident of a case, briefly (the incident itself is in the
// jsonl output).
type Member struct {
	ID        string                  `json:"id"`
	Rule      string                  `json:"rule"`
	Title     string                  `json:"title"`
	Severity  pipeline.Severity       `json:"severity"`
	Status    pipeline.IncidentStatus `json:"status"`
	FirstSeen time.Time               `json:"first_seen"`
	LastSeen  time.Time               `json:"last_seen"`
	Key       map[string]string       `json:"key"`
}

// Step kinds.
const (
	StepIncident = "incident" // an incident was raised (at its first_seen)
	StepEvent    = "event"    // an evidence event
	StepResolved = "resolved" // an incident was resolved
)

// Step is one line of a case's storyline.
type Step struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Incidents: the incident raised or resolved, or every member the
	// event is evidence of (an event shared by two incidents is one step).
	Incidents []string `json:"incidents"`
	// Event is the evidence (StepEvent) or the resolving event (StepResolved, when known).
	Event *pipeline.EventRef `json:"event,omitempty"`
	// Rule, Title and Severity of the incident raised (StepIncident).
	Rule     string            `json:"rule,omitempty"`
	Title    string            `json:"title,omitempty"`
	Severity pipeline.Severity `json:"severity,omitempty"`
}

// Build groups incs into cases, ordered by severity (highest first), then
// first seen, then id. Every incident is in exactly one case.
func Build(incs []pipeline.Incident, o Options) []Case {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	sorted := slices.Clone(incs)
	pipeline.SortIncidents(sorted)

	uf := newUnionFind(len(sorted))
	// byKey lists, per link key, the incidents that have it, in sorted
	// (first_seen) order.
	byKey := map[string][]int{}
	// viaTask lists, per task definition key, the incidents on a task that
	// runs it (Options.TaskDefinitions): they join the incidents that name
	// the task definition, not each other, so that two tasks of one
	// service stay apart unless their task definition has an incident.
	viaTask := map[string][]int{}
	var keys []string
	for i := range sorted {
		direct, indirect := linkKeys(&sorted[i], o.TaskDefinitions)
		for _, k := range direct {
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], i)
		}
		for _, k := range indirect {
			viaTask[k] = append(viaTask[k], i)
		}
	}
	slices.Sort(keys)
	type edge struct {
		a   int
		key string
	}
	var edges []edge
	for _, k := range keys {
		idx := byKey[k]
		// A sweep in first_seen order: the next incident joins the group
		// so far when it starts within the window of the group's last sighting.
		last := lastSeen(&sorted[idx[0]])
		for j := 1; j < len(idx); j++ {
			inc := &sorted[idx[j]]
			if inc.FirstSeen.Sub(last) <= o.Window {
				uf.union(idx[j-1], idx[j])
				edges = append(edges, edge{idx[j], k})
				if l := lastSeen(inc); l.After(last) {
					last = l
				}
			} else {
				last = lastSeen(inc)
			}
		}
		for _, i := range viaTask[k] {
			for _, h := range idx {
				if gap(&sorted[i], &sorted[h]) <= o.Window {
					uf.union(i, h)
					edges = append(edges, edge{i, k})
				}
			}
		}
	}

	groups := map[int][]int{}
	var roots []int
	for i := range sorted {
		r := uf.find(i)
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], i)
	}
	links := map[int]map[string]bool{}
	for _, e := range edges {
		r := uf.find(e.a)
		if links[r] == nil {
			links[r] = map[string]bool{}
		}
		links[r][e.key] = true
	}
	out := make([]Case, 0, len(roots))
	for _, r := range roots {
		members := make([]*pipeline.Incident, len(groups[r]))
		for j, i := range groups[r] {
			members[j] = &sorted[i]
		}
		out = append(out, build(members, links[r], o.TaskDefinitions))
	}
	slices.SortFunc(out, func(a, b Case) int {
		if a.Severity != b.Severity {
			return cmp.Compare(b.Severity, a.Severity)
		}
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// ID returns the id of a case whose earliest incident has id incidentID.
func ID(incidentID string) string {
	h := sha256.Sum256([]byte("ecscorr case\x00" + incidentID))
	return "case-" + hex.EncodeToString(h[:10])
}

// gap is the time between two incidents' spans (0 when they overlap).
func gap(a, b *pipeline.Incident) time.Duration {
	return max(0, a.FirstSeen.Sub(lastSeen(b)), b.FirstSeen.Sub(lastSeen(a)))
}

func lastSeen(inc *pipeline.Incident) time.Time {
	if inc.ResolvedAt != nil && inc.ResolvedAt.After(inc.LastSeen) {
		return *inc.ResolvedAt
	}
	return inc.LastSeen
}

// Link key prefixes.
const (
	keyTask      = "task:"
	keyTaskDef   = "taskdef:"
	keyPrincipal = "principal:"
	keyEvent     = "event:"
)

// linkKeys returns the link keys of inc (see the package doc): those it
// names, and the task definitions of its tasks that it does not name.
func linkKeys(inc *pipeline.Incident, taskDefs map[string]string) (direct, viaTask []string) {
	var out []string
	add := func(k string) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, t := range tasksOf(inc) {
		add(keyTask + t)
	}
	for _, td := range taskDefsOf(inc, nil) {
		add(keyTaskDef + td)
	}
	for _, td := range taskDefsOf(inc, taskDefs) {
		if k := keyTaskDef + td; !slices.Contains(out, k) && !slices.Contains(viaTask, k) {
			viaTask = append(viaTask, k)
		}
	}
	for _, p := range principalsOf(inc) {
		add(keyPrincipal + p)
	}
	for _, e := range inc.Events {
		add(keyEvent + string(e.Source) + "/" + e.ID)
	}
	return out, viaTask
}

func tasksOf(inc *pipeline.Incident) []string {
	var out []string
	if t := inc.Key["task_arn"]; t != "" {
		out = append(out, t)
	}
	if t, ok := inc.Fields["task_arn"].(string); ok && t != "" && !slices.Contains(out, t) {
		out = append(out, t)
	}
	return out
}

func taskDefsOf(inc *pipeline.Incident, taskDefs map[string]string) []string {
	var out []string
	add := func(td string) {
		if td != "" && !slices.Contains(out, td) {
			out = append(out, td)
		}
	}
	add(inc.Key["task_definition_arn"])
	if td, ok := inc.Fields["task_definition_arn"].(string); ok {
		add(td)
	}
	for _, t := range tasksOf(inc) {
		add(taskDefs[t])
	}
	return out
}

// principalFields are the incident fields that name a principal acting on
// the incident's task (the pack's exec chain sets exec_principal).
var principalFields = []string{"exec_principal", "principal"}

func principalsOf(inc *pipeline.Incident) []string {
	var out []string
	add := func(p string) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	add(inc.Key["principal"])
	for _, f := range principalFields {
		if p, ok := inc.Fields[f].(string); ok {
			add(p)
		}
	}
	return out
}

func accountsOf(inc *pipeline.Incident, taskDefs map[string]string) []string {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(inc.Key["account"])
	for _, t := range tasksOf(inc) {
		if a, ok := pipeline.ParseTaskARN(t); ok {
			add(a.Account)
		}
	}
	for _, td := range taskDefsOf(inc, taskDefs) {
		add(arnAccount(td))
	}
	return out
}

// arnAccount returns the account field of an ARN ("" if it is none).
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" {
		return parts[4]
	}
	return ""
}

// build makes the case of members (in SortIncidents order).
func build(members []*pipeline.Incident, links map[string]bool, taskDefs map[string]string) Case {
	first := members[0]
	c := Case{
		ID: ID(first.ID), Title: first.Title, Severity: first.Severity, Status: pipeline.IncidentResolved,
		FirstSeen: first.FirstSeen, LastSeen: lastSeen(first),
		Tactics: []string{}, Techniques: []string{}, Tasks: []string{}, TaskDefinitions: []string{},
		Accounts: []string{}, Principals: []string{}, Rules: []string{}, Links: []string{},
	}
	addAll := func(dst *[]string, src []string) {
		for _, s := range src {
			if s != "" && !slices.Contains(*dst, s) {
				*dst = append(*dst, s)
			}
		}
	}
	tactics := map[string]bool{}
	events := map[string]int{} // source/id → index in c.Steps
	for _, inc := range members {
		if inc.Severity > c.Severity {
			c.Severity, c.Title = inc.Severity, inc.Title
		}
		if inc.Status != pipeline.IncidentResolved {
			c.Status = pipeline.IncidentOpen
		}
		if inc.FirstSeen.Before(c.FirstSeen) {
			c.FirstSeen = inc.FirstSeen
		}
		if l := lastSeen(inc); l.After(c.LastSeen) {
			c.LastSeen = l
		}
		for _, t := range inc.Mitre {
			t = strings.ToUpper(t)
			addAll(&c.Techniques, []string{t})
			for _, ta := range TacticsOf(t) {
				tactics[ta] = true
			}
		}
		for _, tag := range inc.Tags {
			if ta, ok := tacticFromTag(tag); ok {
				tactics[ta] = true
			}
		}
		addAll(&c.Tasks, tasksOf(inc))
		addAll(&c.TaskDefinitions, taskDefsOf(inc, taskDefs))
		addAll(&c.Accounts, accountsOf(inc, taskDefs))
		addAll(&c.Principals, principalsOf(inc))
		addAll(&c.Rules, []string{inc.Rule})
		c.Incidents = append(c.Incidents, Member{
			ID: inc.ID, Rule: inc.Rule, Title: inc.Title, Severity: inc.Severity, Status: inc.Status,
			FirstSeen: inc.FirstSeen, LastSeen: inc.LastSeen, Key: inc.Key,
		})
		c.Steps = append(c.Steps, Step{Time: inc.FirstSeen, Kind: StepIncident, Incidents: []string{inc.ID},
			Rule: inc.Rule, Title: inc.Title, Severity: inc.Severity})
		for i := range inc.Events {
			ev := inc.Events[i]
			k := string(ev.Source) + "/" + ev.ID
			if j, ok := events[k]; ok {
				c.Steps[j].Incidents = append(c.Steps[j].Incidents, inc.ID)
				continue
			}
			events[k] = len(c.Steps)
			c.Steps = append(c.Steps, Step{Time: ev.Time, Kind: StepEvent, Incidents: []string{inc.ID}, Event: &ev})
		}
		if inc.Status == pipeline.IncidentResolved && inc.ResolvedAt != nil {
			c.Steps = append(c.Steps, Step{Time: *inc.ResolvedAt, Kind: StepResolved, Incidents: []string{inc.ID}, Event: inc.ResolvedBy})
		}
	}
	for _, t := range tacticOrder {
		if tactics[t] {
			c.Tactics = append(c.Tactics, t)
		}
	}
	for _, s := range [][]string{c.Techniques, c.Tasks, c.TaskDefinitions, c.Accounts, c.Principals, c.Rules} {
		slices.Sort(s)
	}
	for k := range links {
		c.Links = append(c.Links, k)
	}
	slices.Sort(c.Links)
	c.Subject = subject(c, first)
	kindOrder := map[string]int{StepIncident: 0, StepEvent: 1, StepResolved: 2}
	slices.SortStableFunc(c.Steps, func(a, b Step) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind])
	})
	return c
}

// subject says briefly what the case is about.
func subject(c Case, first *pipeline.Incident) string {
	more := func(s string, n int) string {
		if n > 1 {
			return s + " (+" + strconv.Itoa(n-1) + ")"
		}
		return s
	}
	if len(c.Tasks) > 0 {
		t := c.Tasks[0]
		if first := tasksOf(first); len(first) > 0 {
			t = first[0]
		}
		if a, ok := pipeline.ParseTaskARN(t); ok {
			if a.Cluster != "" {
				t = a.Cluster + "/" + a.ID
			} else {
				t = a.ID
			}
		}
		return more("task "+t, len(c.Tasks))
	}
	if len(c.TaskDefinitions) > 0 {
		td := c.TaskDefinitions[0]
		if i := strings.LastIndex(td, "task-definition/"); i >= 0 {
			td = td[i+len("task-definition/"):]
		}
		return more("taskdef "+td, len(c.TaskDefinitions))
	}
	names := make([]string, 0, len(first.Key))
	for n := range first.Key {
		if first.Key[n] != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + first.Key[n]
	}
	return strings.Join(parts, " ")
}

type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return &unionFind{p}
}

func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}

// union keeps the smaller index (the earlier incident) as the root.
func (u *unionFind) union(a, b int) {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return
	}
	if rb < ra {
		ra, rb = rb, ra
	}
	u.parent[rb] = ra
}
