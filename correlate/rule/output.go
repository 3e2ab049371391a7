package rule

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// FuncMap is the function set of rule templates (besides text/template's
// built-ins such as printf, len, index, eq). Every function accepts any
// value, so a missing key (nil) never makes a template fail.
func FuncMap() template.FuncMap {
	return template.FuncMap{
		"join":    tmplJoin,
		"lower":   func(v any) string { return strings.ToLower(toString(v)) },
		"upper":   func(v any) string { return strings.ToUpper(toString(v)) },
		"default": tmplDefault,
		"trunc":   tmplTrunc,
		"json":    tmplJSON,
		"get":     getPath,
	}
}

// NewTemplate parses a rule template with FuncMap. Absent keys and null
// values anywhere in a path render as <no value> instead of failing (see
// tmplsafe.go); `default` replaces them.
func NewTemplate(name, text string) (*template.Template, error) {
	t, _, err := parseTemplate(name, text)
	return t, err
}

// parseTemplate also returns the root field chains read by the template,
// before the nil-safe rewrite hides them.
func parseTemplate(name, text string) (*template.Template, [][]string, error) {
	t, err := template.New(name).Funcs(FuncMap()).Parse(text)
	if err != nil {
		return nil, nil, err
	}
	chains := rootFieldChains(t)
	safeTemplate(t)
	return t, chains, nil
}

// Render executes t against env, without leading and trailing space (YAML
// block scalars end in a newline); a nil template renders "".
func Render(t *template.Template, env OutputEnv) (string, error) {
	if t == nil {
		return "", nil
	}
	var b strings.Builder
	if err := t.Execute(&b, env); err != nil {
		return b.String(), err
	}
	return strings.TrimSpace(b.String()), nil
}

// Render is the package's Render for one of r's templates, without
// text/template where the loader could compile it (tmplfast.go).
func (r *Rule) Render(t *template.Template, env OutputEnv) (string, error) {
	if f := r.fast[t]; f != nil {
		if s, ok := f.exec(env); ok {
			return s, nil
		}
	}
	return Render(t, env)
}

// LiteralText is what t renders whatever the data, when it has no
// actions (nil renders "").
func LiteralText(t *template.Template) (string, bool) {
	if t == nil {
		return "", true
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return "", false
	}
	switch nodes := t.Tree.Root.Nodes; {
	case len(nodes) == 0:
		return "", true
	case len(nodes) == 1:
		if tn, ok := nodes[0].(*parse.TextNode); ok {
			return strings.TrimSpace(string(tn.Text)), true // as Render
		}
	}
	return "", false
}

func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func tmplJoin(list any, sep string) string {
	v := reflect.ValueOf(list)
	if !v.IsValid() {
		return ""
	}
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return toString(list)
	}
	parts := make([]string, v.Len())
	for i := range parts {
		parts[i] = toString(v.Index(i).Interface())
	}
	return strings.Join(parts, sep)
}

func tmplDefault(def, v any) any {
	if v == nil {
		return def
	}
	rv := reflect.ValueOf(v)
	if rv.IsZero() {
		return def
	}
	switch rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.String:
		if rv.Len() == 0 {
			return def
		}
	}
	return v
}

func tmplTrunc(n int, v any) string {
	s := toString(v)
	r := []rune(s)
	if n < 0 || len(r) <= n {
		return s
	}
	return string(r[:n])
}

func tmplJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%q", err.Error())
	}
	return string(b)
}

// EntityData is the snake_case map form of an entity, as in OutputEnv.
func EntityData(e pipeline.Entity) map[string]any {
	return map[string]any{
		"account":                e.Account,
		"region":                 e.Region,
		"cluster":                e.Cluster,
		"service":                e.Service,
		"task_arn":               e.TaskARN,
		"task_definition_arn":    e.TaskDefinitionARN,
		"task_definition_family": TaskDefinitionFamily(e.TaskDefinitionARN),
		"container_id":           e.ContainerID,
		"principal":              e.Principal,
	}
}

// EntityEnvOf converts a pipeline entity for Env.
func EntityEnvOf(e pipeline.Entity) EntityEnv {
	return EntityEnv{
		Account: e.Account, Region: e.Region, Cluster: e.Cluster, Service: e.Service,
		TaskARN: e.TaskARN, TaskDefinitionARN: e.TaskDefinitionARN,
		TaskDefinitionFamily: TaskDefinitionFamily(e.TaskDefinitionARN),
		ContainerID:          e.ContainerID, Principal: e.Principal,
	}
}

// TaskDefinitionFamily returns "family" of
// arn:aws:ecs:region:acct:task-definition/family:rev (or of "family:rev").
func TaskDefinitionFamily(arn string) string {
	s := arn
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s = s[:i]
	}
	return s
}

// StepData is the map form of one step (OutputEnv steps.<as>, event).
// signal is the name of the signal that matched; raw and fields may be nil.
func StepData(signal string, ev *pipeline.Event, raw map[string]any, fields map[string]any) map[string]any {
	if raw == nil {
		raw = map[string]any{}
	}
	if fields == nil {
		fields = map[string]any{}
	}
	return map[string]any{
		"signal":   signal,
		"source":   string(ev.Source),
		"type":     ev.Type,
		"id":       ev.ID,
		"time":     ev.Time,
		"severity": ev.Severity.String(),
		"raw":      raw,
		"fields":   fields,
		"entity":   EntityData(ev.Entity),
	}
}

// OutputInput is what BuildOutputEnv assembles.
type OutputInput struct {
	Rule    *Rule
	Key     map[string]string
	Entity  pipeline.Entity           // of the last evidence event
	Steps   map[string]map[string]any // alias → StepData
	Agg     map[string]any            // count, distinct, sum, avg, value, baseline, for
	Signals map[string]bool
	Count   int
	Event   map[string]any // the last evidence event as StepData
}

// BuildOutputEnv builds the map that severity overrides, output fields,
// resolve filters and templates see (see OutputEnv).
func BuildOutputEnv(in OutputInput) OutputEnv {
	ruleM := map[string]any{}
	if r := in.Rule; r != nil {
		ruleM = map[string]any{
			"id": r.ID, "title": r.TitleSrc, "description": r.Description,
			"severity": r.Severity.String(), "mitre": nonNil(r.Mitre), "tags": nonNil(r.Tags),
		}
	}
	key := make(map[string]any, len(in.Key))
	for k, v := range in.Key {
		key[k] = v
	}
	steps := make(map[string]any, len(in.Steps))
	for k, v := range in.Steps {
		steps[k] = v
	}
	signals := make(map[string]any, len(in.Signals))
	for k, v := range in.Signals {
		signals[k] = v
	}
	agg := in.Agg
	if agg == nil {
		agg = map[string]any{}
	}
	ev := in.Event
	if ev == nil {
		ev = map[string]any{}
	}
	return OutputEnv{
		"rule":    ruleM,
		"key":     key,
		"entity":  EntityData(in.Entity),
		"steps":   steps,
		"agg":     agg,
		"signals": signals,
		"count":   in.Count,
		"event":   ev,
	}
}

// nonNil keeps a list a list ([] in JSON, never null) at load and at run
// time alike.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ClosesEnv is what Resolve.Closes sees: the open incident's OutputEnv
// (also reachable as `incident`) with `event` set to the resolving event.
func ClosesEnv(incident OutputEnv, resolving map[string]any) map[string]any {
	m := make(map[string]any, len(incident)+2)
	for k, v := range incident {
		m[k] = v
	}
	m["incident"] = incident
	m["event"] = resolving
	return m
}

// sampleOutputEnv is a plausible environment for r, used to execute
// templates once at load.
func sampleOutputEnv(r *Rule, aliases []string, byNames []string) OutputEnv {
	ev := &pipeline.Event{ID: "sample", Source: pipeline.SourceCloudTrail, Type: "sample", Time: time.Unix(0, 0).UTC()}
	steps := make(map[string]map[string]any, len(aliases))
	for _, a := range aliases {
		steps[a] = StepData("sample", ev, nil, nil)
	}
	key := make(map[string]string, len(byNames))
	for _, k := range byNames {
		key[k] = ""
	}
	agg := map[string]any{"count": 1, "distinct": 1, "sum": 0.0, "avg": 0.0, "value": 0.0, "baseline": 0.0, "for": "0s"}
	return BuildOutputEnv(OutputInput{Rule: r, Key: key, Steps: steps, Agg: agg, Signals: map[string]bool{}, Count: 1, Event: StepData("sample", ev, nil, nil)})
}
