package rule

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
)

// checkFast renders t over env through the compiled form and through
// text/template: where the fast form answers, it must be text/template's
// successful result, byte for byte. It reports whether it answered.
func checkFast(t *testing.T, what string, tm *template.Template, f *fastTemplate, env OutputEnv) bool {
	t.Helper()
	want, err := Render(tm, env)
	got, ok := f.exec(env)
	if !ok {
		return false
	}
	if err != nil {
		t.Errorf("%s: fast rendered %q where text/template fails: %v\nenv: %v", what, got, err, env)
	} else if got != want {
		t.Errorf("%s:\n fast %q\n text %q\nenv: %v", what, got, want, env)
	}
	return true
}

// panicky is a Stringer that panics.
type panicky struct{}

func (panicky) String() string { panic("boom") }

type stringer struct{ s string }

func (s stringer) String() string { return "S:" + s.s }

// palette is the values a field may take in the differential tests;
// strings are added per template (its literals, so eq goes both ways).
func palette() []any {
	n := 42
	return []any{
		absent{}, nil, "", "x", " padded ", "a<b>&\"c\"\n", "ünï\tcode",
		0.0, 1.0, 2.5, -3.0, 1e21, 1e-7, math.NaN(), math.Inf(1), 0, 7, int64(-9), uint(3), float32(1.5),
		true, false,
		[]any{}, []any{"a", 1.0, nil, true}, []string{"p", "q"}, []string(nil), []int{1, 2},
		map[string]any{}, map[string]any{"k": "v", "a": 1.0}, map[string]any(nil), map[string]string{"s": "t"},
		time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), 90 * time.Second, json.Number("12.50"),
		&n, (*int)(nil), stringer{"v"}, panicky{}, errors.New("an error"), func() {}, make(chan int),
		struct{ A string }{"f"},
	}
}

// absent marks a key left out of its map.
type absent struct{}

// getPaths returns the key paths of t's get calls (its field chains) and
// its string literals.
func getPaths(t *template.Template) (paths [][]string, lits []string) {
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				if id, ok := c.Args[0].(*parse.IdentifierNode); ok && id.Ident == "get" {
					var p []string
					for _, a := range c.Args[2:] {
						if s, ok := a.(*parse.StringNode); ok {
							p = append(p, s.Text)
						}
					}
					paths = append(paths, p)
					continue
				}
				for _, a := range c.Args {
					switch a := a.(type) {
					case *parse.StringNode:
						lits = append(lits, a.Text)
					case *parse.FieldNode:
						paths = append(paths, a.Ident)
					default:
						walk(a)
					}
				}
			}
		}
	}
	walk(t.Tree.Root)
	return paths, lits
}

// perturb returns a copy of env with each path set to a random value of
// pal, or cut short by one at a random depth.
func perturb(rng *rand.Rand, env OutputEnv, paths [][]string, pal []any) OutputEnv {
	out := deepCopyMap(env)
	for _, p := range paths {
		m := out
		for i, k := range p {
			if i == len(p)-1 || rng.IntN(6) == 0 {
				switch v := pal[rng.IntN(len(pal))].(type) {
				case absent:
					delete(m, k)
				default:
					m[k] = v
				}
				break
			}
			// A copy: the map may be one of pal's, set above.
			next, _ := m[k].(map[string]any)
			next = maps.Clone(next)
			if next == nil {
				next = map[string]any{}
			}
			m[k] = next
			m = next
		}
	}
	return out
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if mm, ok := v.(map[string]any); ok && mm != nil {
			v = deepCopyMap(mm)
		}
		out[k] = v
	}
	return out
}

// fixtureEnv is an output environment whose every step is a real record
// of the built-in pack's fixtures.
func fixtureEnv(t *testing.T, r *Rule, aliases []string) OutputEnv {
	files, _ := filepath.Glob("../../rules/builtin/fixtures/*.json")
	steps := map[string]map[string]any{}
	var last map[string]any
	for i, a := range aliases {
		b, err := os.ReadFile(files[i%len(files)])
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(b, &raw); err != nil {
			raw = nil // a file of several records: an empty raw
		}
		ev := &pipeline.Event{ID: fmt.Sprint("ev", i), Source: pipeline.SourceCloudTrail, Type: "t", Time: time.Unix(int64(i), 0).UTC(),
			Entity: pipeline.Entity{Account: "111122223333", Region: "eu-west-1", TaskARN: "arn:aws:ecs:eu-west-1:111122223333:task/prod/x"}}
		last = StepData("sig", ev, raw, map[string]any{"principal": "arn:aws:iam::1:user/u", "issues": []any{"privileged"}})
		steps[a] = last
	}
	return BuildOutputEnv(OutputInput{Rule: r, Key: map[string]string{"account": "111122223333"}, Steps: steps,
		Agg:     map[string]any{"count": 3, "distinct": 2, "value": 93.25, "baseline": 40.0, "for": "10m0s"},
		Signals: map[string]bool{"a": true}, Count: 1, Event: last,
		Entity: pipeline.Entity{Account: "111122223333", Region: "eu-west-1", Cluster: "prod"}})
}

// TestFastTemplatesBuiltin renders every template of the built-in pack
// both ways over real and perturbed environments.
func TestFastTemplatesBuiltin(t *testing.T) {
	set, diags := LoadFS(rules.Builtin, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n, fast := 0, 0
	for _, r := range append(set.Rules, set.Disabled...) {
		for _, tm := range []*template.Template{r.Title, r.Summary, r.Remediation, r.DedupKey} {
			if tm == nil {
				continue
			}
			if _, literal := LiteralText(tm); literal {
				continue // the engine keeps these as text
			}
			f := r.fast[tm]
			if f == nil {
				t.Errorf("%s: template %s is not compiled (tmplfast.go): every incident pays text/template for it", r.ID, tm.Name())
				continue
			}
			paths, lits := getPaths(tm)
			var aliases []string
			for _, p := range paths {
				if len(p) > 1 && p[0] == "steps" {
					aliases = append(aliases, p[1])
				}
			}
			base := fixtureEnv(t, r, aliases)
			pal := palette()
			for _, l := range lits {
				pal = append(pal, l)
			}
			what := r.ID + " " + tm.Name()
			for i := range 300 {
				env := base
				if i > 0 {
					env = perturb(rng, base, paths, pal)
				}
				n++
				if checkFast(t, what, tm, f, env) {
					fast++
				}
			}
			if !checkFast(t, what+" (real)", tm, f, base) {
				t.Errorf("%s: the fast form gave up on the unperturbed environment", what)
			}
		}
	}
	t.Logf("%d renders, %d by the fast form", n, fast)
	if fast < n/4 { // many palette values are text/template's on purpose
		t.Errorf("only %d of %d renders by the fast form", fast, n)
	}
}

// TestFastTemplatesTable: constructed templates, compiled or left to
// text/template, over constructed environments.
func TestFastTemplatesTable(t *testing.T) {
	cases := []struct {
		src  string
		fast bool // compiled
	}{
		{``, true},
		{" \n\t ", true},
		{`plain text`, true},
		{`  {{ .count }}  `, true},
		{`{{ .missing }}|{{ .steps.none.raw.x }}|{{ .key.k }}`, true},
		{`{{ .steps.s.raw.a.b.c }} {{ .steps.s.fields.n }} {{ .entity.account }}/{{ .entity.region }}`, true},
		{`{{ . }}`, true},
		{`{{ $ }} {{ $.entity.account }} {{ $.key }}`, true},
		{`{{ .entity }} {{ .key }} {{ .steps.s.raw }}`, true},
		{`a<b>&"c" {{ "q\"uote\t" }} {{ ` + "`raw`" + ` }} {{ true }} {{ false }}`, true},
		{"{{- .v -}}\n  tail  {{/* comment */}} end", true},
		{`{{ if .v }}yes{{ else }}no{{ end }}`, true},
		{`{{ if eq .v "x" }}X{{ else if eq .v "" }}empty{{ else if .w }}W{{ else }}other{{ end }}`, true},
		{`{{ if eq .v "x" "y" " padded " }}in{{ end }} {{ eq .v .w }} {{ eq "a" "a" }} {{ .v | eq "x" }}`, true},
		{`{{ with .v }}<{{ . }}>{{ end }}{{ with .w }}[{{ .k }}]{{ else }}none{{ end }}`, true},
		{`{{ with .m }}{{ .k }} {{ .a }} {{ get . "k" }}{{ end }}{{ with .v }}{{ else with .w }}w={{ . }}{{ end }}`, true},
		{`{{ .v | default "dflt" }} {{ default "d2" .w }} {{ .v | default .w }} {{ default .w .v }}`, true},
		{`{{ join .v ", " }} {{ join .w "" }} {{ join .steps.s.fields.n "-" }}`, true},
		{`{{ printf "%.0f%%" .v }} {{ printf "%v|%v" .v .w }} {{ .v | printf "%s" }} {{ printf "lit" }}`, true},
		{`{{ lower .v }} {{ upper (default "x" .w) }} {{ .v | json }} {{ trunc 3 .v }} {{ .w | trunc 2 }}`, true},
		{`{{ (.v) }} {{ (default "p" .w) | upper }}`, true},
		{`{{ .steps.s.time }} {{ .count }} {{ .agg.value }}`, true},
		// text/template's: pointers, methods, other functions, range, variables.
		{`{{ .steps.s.time.Unix }}`, true},
		{`{{ range .v }}[{{ . }}]{{ end }}`, false},
		{`{{ $x := .v }}{{ $x }}`, false},
		{`{{ with $x := .v }}{{ $x }}{{ end }}`, false},
		{`{{ len .v }} {{ index .m "k" }}`, false},
		{`{{ and .v .w }} {{ or .v "z" }} {{ not .v }}`, false},
		{`{{ print .v }} {{ println .w }}`, false},
		{`{{ html .v }}`, false},
		{`{{ printf .v }}`, false},
		{`{{ join .v .w }}`, false},
		{`{{ .v | join ", " }}`, false},
		{`{{ trunc .v .w }}`, false},
		{`{{ default "x" }}`, false},
		{`{{ define "sub" }}s{{ end }}{{ template "sub" }}`, false},
		{`{{ block "b" . }}x{{ end }}`, false},
		{`{{ .v 1 }}`, false},
	}
	base := OutputEnv{
		"count": 2, "entity": map[string]any{"account": "1", "region": "r"}, "key": map[string]any{"k": "kv"},
		"agg":   map[string]any{"value": 80.5},
		"steps": map[string]any{"s": map[string]any{"time": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "raw": map[string]any{"a": map[string]any{"b": map[string]any{"c": "deep"}}}, "fields": map[string]any{"n": []any{"x", 2.0}}}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pal := append(palette(), "x", "y", "a")
	paths := [][]string{{"v"}, {"w"}, {"m"}, {"m", "k"}, {"m", "a"}, {"steps", "s", "fields", "n"}, {"steps", "s", "raw", "a", "b", "c"}, {"steps", "s", "time"}, {"count"}, {"agg", "value"}, {"entity", "account"}}
	for _, c := range cases {
		tm, err := NewTemplate("t", c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		f := compileFast(tm)
		if (f != nil) != c.fast {
			t.Errorf("%s: compiled %v, want %v", c.src, f != nil, c.fast)
		}
		if f == nil {
			continue
		}
		answered := 0
		for i := range 2000 {
			env := base
			if i > 0 {
				env = perturb(rng, base, paths, pal)
			}
			if checkFast(t, c.src, tm, f, env) {
				answered++
			}
		}
		if answered == 0 {
			t.Errorf("%s: the fast form never answered", c.src)
		}
	}
}

// TestFastRenderRule: Rule.Render uses the compiled form of a loaded
// rule's template, and text/template for one it does not know.
func TestFastRenderRule(t *testing.T) {
	set, diags := LoadFS(rules.Builtin, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r := set.Rules[0]
	for _, x := range set.Rules {
		if x.ID == "ecs-drift-cloudtrail-logging-disabled" {
			r = x
		}
	}
	env := sampleOutputEnv(r, []string{"change"}, []string{"account", "region"})
	env["steps"].(map[string]any)["change"].(map[string]any)["raw"] = map[string]any{"eventName": "StopLogging"}
	got, err := r.Render(r.Title, env)
	want, err2 := Render(r.Title, env)
	if err != nil || err2 != nil || got != want || !strings.Contains(got, "StopLogging") {
		t.Fatalf("Render: %q, %v; text/template: %q, %v", got, err, want, err2)
	}
	other, _ := NewTemplate("x", "{{ .count }}")
	if s, err := r.Render(other, env); s != "1" || err != nil {
		t.Fatalf("foreign template: %q, %v", s, err)
	}
}
