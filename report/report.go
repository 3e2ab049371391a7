// Package report renders incidents as one self-contained HTML file a
// responder reads offline: an overview, the attack cases (report/cases)
// with a timeline each, every evidence event with where it was read and its
// raw record on demand, the remediation, and filters by severity, rule,
// task and time. CSS and JS are inline and a Content-Security-Policy
// forbids every fetch: the file opens the same on a laptop with no
// network.
package report

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/report/cases"
)

//go:embed report.html.tmpl
var pageTemplate string

// Inputs is what a replay read; a report made from an incidents file has
// none.
type Inputs struct {
	Paths []string
	Files int64
	// Records read per source; Skipped records and files per reason.
	Records      map[pipeline.Source]int64
	SkippedRecs  map[string]int64
	SkippedFiles map[string]int64
	OutOfRange   int64
	Correlated   int64
	Irrelevant   int64
	Unresolved   int64
	// First and Last are the event times of the events correlated.
	First, Last time.Time
}

// EventKey names an evidence event.
type EventKey struct {
	Source pipeline.Source
	ID     string
}

// Event is what the inputs say of one evidence event: where it was read,
// the record, and what it was about.
type Event struct {
	Pos    pipeline.Position
	Raw    json.RawMessage
	Entity pipeline.Entity
}

// Data is what a report shows.
type Data struct {
	// Title of the page (default "ecscorr incident report").
	Title string
	// Source says where the incidents came from ("replay of testdata/demo").
	Source string
	// Generated and Version are shown in the footer when set.
	Generated time.Time
	Version   string
	Inputs    *Inputs
	Incidents []pipeline.Incident
	// Cases: nil means cases.Build(Incidents, CaseOptions).
	Cases       []cases.Case
	CaseOptions cases.Options
	// Events holds the evidence the inputs were re-read for (optional).
	Events map[EventKey]Event
}

// EvidenceKeys returns every evidence and resolving event of incs.
func EvidenceKeys(incs []pipeline.Incident) map[EventKey]bool {
	out := map[EventKey]bool{}
	for i := range incs {
		for _, e := range incs[i].Events {
			out[EventKey{e.Source, e.ID}] = true
		}
		if r := incs[i].ResolvedBy; r != nil {
			out[EventKey{r.Source, r.ID}] = true
		}
	}
	return out
}

// Write renders d as one HTML document.
func Write(w io.Writer, d Data) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
		"join":  strings.Join,
	}).Parse(pageTemplate)
	if err != nil {
		return fmt.Errorf("report template: %w", err)
	}
	v := buildView(d)
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return fmt.Errorf("rendering report: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

const timeFmt = "2006-01-02 15:04:05"

type view struct {
	Title, Source, Generated, Version string
	Inputs                            *inputsView
	NCases, NIncidents, NOpen         int
	BySeverity                        []sevCount
	Tasks, Accounts, Rules            []string
	TaskOptions                       []option
	First, Last                       string
	FirstInput, LastInput             string // datetime-local bounds of the time filter
	Cases                             []caseView
}

type sevCount struct {
	Name             string
	Cases, Incidents int
}

type option struct{ Value, Label string }

type inputsView struct {
	Paths          []string
	Files          int64
	Records        []kv
	TotalRecords   int64
	SkippedRecs    []kv
	NSkippedRecs   int64
	SkippedFiles   []kv
	NSkippedFiles  int64
	OutOfRange     int64
	Correlated     int64
	Irrelevant     int64
	Unresolved     int64
	First, Last    string
	HasEventWindow bool
}

type kv struct {
	K string
	V int64
}

type caseView struct {
	ID, Title, Subject, Severity, Status string
	First, Last, Span                    string
	Tactics, Techniques                  []string
	Tasks, TaskDefinitions, Accounts     []string
	Principals, Rules, Links             []string
	Incidents                            []incView
	Steps                                []stepView
}

type incView struct {
	ID, Rule, Title, Severity, Status string
	Summary, Remediation, Runbook     string
	First, Last, Resolved             string
	FirstMs, LastMs                   int64
	Key                               string
	Mitre, Tags                       []string
	Count, Events, Dropped            int
	Tasks                             string // space-separated task ARNs, for the task filter
}

type stepView struct {
	Time      string
	Ms        int64
	Kind      string
	Severity  string // of the incident raised, or the highest of the incidents the event is evidence of
	Source    string
	Type      string
	Step      string
	What      string
	Where     string // file:line record n
	WhereFile string // the file's base name, line and record, shown (Where is the tooltip)
	Task      string
	Raw       string
	ID        string
	Incidents string // space-separated incident ids
	Rule      string
}

func buildView(d Data) view {
	if d.Title == "" {
		d.Title = "ecscorr incident report"
	}
	cs := d.Cases
	if cs == nil {
		cs = cases.Build(d.Incidents, d.CaseOptions)
	}
	byID := make(map[string]*pipeline.Incident, len(d.Incidents))
	for i := range d.Incidents {
		byID[d.Incidents[i].ID] = &d.Incidents[i]
	}
	v := view{Title: d.Title, Source: d.Source, Version: d.Version, NCases: len(cs), NIncidents: len(d.Incidents)}
	if !d.Generated.IsZero() {
		v.Generated = d.Generated.UTC().Format(time.RFC3339)
	}
	if d.Inputs != nil {
		v.Inputs = inputsOf(d.Inputs)
	}
	sevCases := map[pipeline.Severity]int{}
	sevIncs := map[pipeline.Severity]int{}
	var first, last time.Time
	tasks, accounts, rules := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range cs {
		sevCases[c.Severity]++
		for _, t := range c.Tasks {
			tasks[t] = true
		}
		for _, a := range c.Accounts {
			accounts[a] = true
		}
		if first.IsZero() || c.FirstSeen.Before(first) {
			first = c.FirstSeen
		}
		if c.LastSeen.After(last) {
			last = c.LastSeen
		}
	}
	for i := range d.Incidents {
		inc := &d.Incidents[i]
		sevIncs[inc.Severity]++
		rules[inc.Rule] = true
		if inc.Status != pipeline.IncidentResolved {
			v.NOpen++
		}
	}
	for s := pipeline.SeverityCritical; s >= pipeline.SeverityUnknown; s-- {
		if sevCases[s]+sevIncs[s] > 0 {
			v.BySeverity = append(v.BySeverity, sevCount{s.String(), sevCases[s], sevIncs[s]})
		}
		if s == pipeline.SeverityUnknown {
			break
		}
	}
	v.Tasks, v.Accounts, v.Rules = sortedKeys(tasks), sortedKeys(accounts), sortedKeys(rules)
	for _, t := range v.Tasks {
		v.TaskOptions = append(v.TaskOptions, option{t, shortTask(t)})
	}
	if !first.IsZero() {
		v.First, v.Last = first.UTC().Format(timeFmt), last.UTC().Format(timeFmt)
		v.FirstInput = first.UTC().Truncate(time.Minute).Format("2006-01-02T15:04")
		v.LastInput = last.UTC().Add(time.Minute - time.Nanosecond).Truncate(time.Minute).Format("2006-01-02T15:04")
	}
	for _, c := range cs {
		v.Cases = append(v.Cases, caseOf(c, byID, d.Events))
	}
	return v
}

func inputsOf(in *Inputs) *inputsView {
	iv := &inputsView{Paths: in.Paths, Files: in.Files, OutOfRange: in.OutOfRange, Correlated: in.Correlated,
		Irrelevant: in.Irrelevant, Unresolved: in.Unresolved}
	for _, s := range pipeline.Sources {
		if n := in.Records[s]; n > 0 {
			iv.Records = append(iv.Records, kv{string(s), n})
			iv.TotalRecords += n
		}
	}
	iv.SkippedRecs, iv.NSkippedRecs = sortedCounts(in.SkippedRecs)
	iv.SkippedFiles, iv.NSkippedFiles = sortedCounts(in.SkippedFiles)
	if !in.First.IsZero() {
		iv.HasEventWindow = true
		iv.First, iv.Last = in.First.UTC().Format(timeFmt), in.Last.UTC().Format(timeFmt)
	}
	return iv
}

func sortedCounts(m map[string]int64) ([]kv, int64) {
	var out []kv
	var n int64
	for k, c := range m {
		out = append(out, kv{k, c})
		n += c
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.K, b.K) })
	return out, n
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func shortTask(arn string) string {
	if t, ok := pipeline.ParseTaskARN(arn); ok {
		if t.Cluster != "" {
			return t.Cluster + "/" + t.ID
		}
		return t.ID
	}
	return arn
}

func caseOf(c cases.Case, byID map[string]*pipeline.Incident, events map[EventKey]Event) caseView {
	cv := caseView{
		ID: c.ID, Title: c.Title, Subject: c.Subject, Severity: c.Severity.String(), Status: string(c.Status),
		First: c.FirstSeen.UTC().Format(timeFmt), Last: c.LastSeen.UTC().Format(timeFmt),
		Span:    c.LastSeen.Sub(c.FirstSeen).Round(time.Second).String(),
		Tactics: c.Tactics, Techniques: c.Techniques, Tasks: c.Tasks, TaskDefinitions: c.TaskDefinitions,
		Accounts: c.Accounts, Principals: c.Principals, Rules: c.Rules, Links: c.Links,
	}
	sevOf := map[string]pipeline.Severity{}
	for _, m := range c.Incidents {
		sevOf[m.ID] = m.Severity
		inc := byID[m.ID]
		if inc == nil {
			continue
		}
		iv := incView{
			ID: inc.ID, Rule: inc.Rule, Title: inc.Title, Severity: inc.Severity.String(), Status: string(inc.Status),
			Summary: inc.Summary, Remediation: inc.Remediation, Runbook: inc.Runbook,
			First: inc.FirstSeen.UTC().Format(timeFmt), Last: inc.LastSeen.UTC().Format(timeFmt),
			FirstMs: inc.FirstSeen.UnixMilli(), LastMs: inc.LastSeen.UnixMilli(),
			Key: keyString(inc.Key), Mitre: inc.Mitre, Tags: inc.Tags, Count: inc.Count,
			Events: len(inc.Events), Dropped: inc.EventsDropped,
		}
		if inc.ResolvedAt != nil {
			iv.Resolved = inc.ResolvedAt.UTC().Format(timeFmt)
			if r := inc.ResolvedAt.UnixMilli(); r > iv.LastMs {
				iv.LastMs = r
			}
		}
		iv.Tasks = strings.Join(incidentTasks(inc, c), " ")
		cv.Incidents = append(cv.Incidents, iv)
	}
	for _, s := range c.Steps {
		sv := stepView{Time: s.Time.UTC().Format("2006-01-02 15:04:05.000"), Ms: s.Time.UnixMilli(), Kind: s.Kind,
			Incidents: strings.Join(s.Incidents, " ")}
		var sev pipeline.Severity
		for _, id := range s.Incidents {
			sev = max(sev, sevOf[id])
		}
		sv.Severity = sev.String()
		switch s.Kind {
		case cases.StepIncident:
			sv.Rule, sv.What = s.Rule, s.Title
		case cases.StepResolved:
			if inc := byID[s.Incidents[0]]; inc != nil {
				sv.Rule, sv.What = inc.Rule, "resolved: "+inc.Title
			}
		}
		if e := s.Event; e != nil {
			sv.Source, sv.Type, sv.Step, sv.ID = string(e.Source), e.Type, e.Step, e.ID
			if s.Kind == cases.StepEvent {
				sv.What = e.Type
			}
			if ev, ok := events[EventKey{e.Source, e.ID}]; ok {
				sv.Where = ev.Pos.String()
				short := ev.Pos
				short.File = path.Base(short.File)
				sv.WhereFile = short.String()
				sv.Task = ev.Entity.TaskARN
				if w := describe(e.Source, ev.Raw); w != "" && s.Kind == cases.StepEvent {
					sv.What = w
				}
				sv.Raw = pretty(ev.Raw)
			}
		}
		cv.Steps = append(cv.Steps, sv)
	}
	return cv
}

// incidentTasks are the tasks an incident concerns, for the task filter:
// its own, or (for a task definition's incident) its case's.
func incidentTasks(inc *pipeline.Incident, c cases.Case) []string {
	if t := inc.Key["task_arn"]; t != "" {
		return []string{t}
	}
	if t, ok := inc.Fields["task_arn"].(string); ok && t != "" {
		return []string{t}
	}
	if inc.Key["task_definition_arn"] != "" {
		return c.Tasks
	}
	return nil
}

func keyString(k map[string]string) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if k[n] != "" {
			parts = append(parts, n+"="+k[n])
		}
	}
	return strings.Join(parts, " ")
}

func pretty(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// describe says in one line what a raw record reports, per source; ""
// when the record does not say.
func describe(src pipeline.Source, raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	str := func(path ...string) string {
		var cur any = m
		for _, p := range path {
			mm, ok := cur.(map[string]any)
			if !ok {
				return ""
			}
			cur = mm[p]
		}
		switch x := cur.(type) {
		case string:
			return x
		case float64:
			return fmt.Sprint(x)
		}
		return ""
	}
	switch src {
	case pipeline.SourceCloudTrail:
		s := str("eventSource") + " " + str("eventName")
		if who := cmp.Or(str("userIdentity", "arn"), str("userIdentity", "principalId")); who != "" {
			s += " by " + who
		}
		if ip := str("sourceIPAddress"); ip != "" {
			s += " from " + ip
		}
		if code := str("errorCode"); code != "" {
			s += " (failed: " + code + ")"
		}
		return s
	case pipeline.SourceGuardDuty:
		return cmp.Or(str("title"), str("Title"))
	case pipeline.SourceFalco:
		return str("output")
	case pipeline.SourceContainerInsights:
		u, r := str("CpuUtilized"), str("CpuReserved")
		if u != "" && r != "" {
			return "CPU " + u + " of " + r + " units reserved"
		}
	case pipeline.SourceECS:
		if st := str("detail", "lastStatus"); st != "" {
			return "task " + st
		}
	}
	return ""
}
