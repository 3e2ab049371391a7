package rule

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ecscorr/ecscorr/rules"
)

// docExample returns the YAML of the complete example of docs/rules.md.
func docExample(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "## 9. Complete example")
	if i < 0 {
		t.Fatal("docs/rules.md has no complete example")
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n") + len("```yaml\n")
	end := strings.Index(s[start:], "```")
	return s[start : start+end]
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The docs' own example defines ct_ok and lists.shells, as the pack does:
// loaded together with the pack, both keep their own meaning.
func TestDocExampleLoadsWithBuiltin(t *testing.T) {
	pack, diags := LoadPaths(nil, LoadOptions{Now: testNow})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "my-rules", "example.yaml"), docExample(t))
	set, diags := LoadPaths([]string{BuiltinName, filepath.Dir(p)}, LoadOptions{Now: testNow})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(set.Rules) != len(pack.Rules)+1 || len(set.Signals) != len(pack.Signals)+3 {
		t.Errorf("%d rules, %d signals; want %d, %d", len(set.Rules), len(set.Signals), len(pack.Rules)+1, len(pack.Signals)+3)
	}
	var notes []string
	for _, d := range diags {
		if d.Severity == SevNote && strings.Contains(d.Msg, "hides") {
			notes = append(notes, d.String())
		}
	}
	want := []string{
		p + ":5:3: note: list shells hides the built-in pack's list of that name (builtin/00-lists.yaml:18:3) in your files; the pack keeps its own",
		p + ":8:3: note: macro ct_ok hides the built-in pack's macro of that name (builtin/00-lists.yaml:29:3) in your files; the pack keeps its own",
	}
	if !slices.Equal(notes, want) {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(want, "\n"))
	}
	if got, want := len(set.Lists["shells"]), 5; got != want {
		t.Errorf("lists.shells has %d values in the user's scope, want %d", got, want)
	}
	if got, want := len(set.Lists["builtin.shells"]), len(pack.Lists["shells"]); got != want || got == 5 {
		t.Errorf("the pack's shells: %d values, want %d", got, want)
	}
	// errorCode "Success": the pack's ct_ok accepts it, the example's
	// (raw.errorCode == nil) does not.
	env := &Env{Event: EventEnv{Source: "cloudtrail", Type: "ecs.amazonaws.com:ExecuteCommand"}, Lists: set.Lists, Raw: map[string]any{
		"eventSource": "ecs.amazonaws.com", "eventName": "ExecuteCommand", "errorCode": "Success",
		"requestParameters": map[string]any{"interactive": true},
	}}
	for sig, want := range map[string]bool{"ct_ecs_exec": true, "my_ecs_exec_interactive": false} {
		if got, err := set.SignalsByName[sig].Eval(env); err != nil || got != want {
			t.Errorf("%s on errorCode Success = %v, %v; want %v", sig, got, err, want)
		}
	}
}

// Scoping in detail, on a small pack: a user's file sees its own names
// first, then the pack's; a pack macro used from a user's file still
// resolves its own names in the pack.
func TestBuiltinScopes(t *testing.T) {
	pack := fstest.MapFS{"p.yaml": {Data: []byte(header + `
lists:
  l: [pack]
  only_pack: [x]
macros:
  m: 'raw.v in lists.l'
  pm: 'm'
signals:
  - {name: pack_sig, source: falco, types: [t], where: 'm'}
rules:
  - {id: pack-rule, title: t, severity: low, detect: {match: {signal: pack_sig}}}
`)}}
	dir := t.TempDir()
	user := writeFile(t, filepath.Join(dir, "u.yaml"), header+`
lists:
  l: [user]
macros:
  m: 'raw.v in lists.l'
signals:
  - {name: user_sig, source: falco, types: [t], where: 'm'}
  - {name: user_pm, source: falco, types: [t], where: 'pm'}
  - {name: user_only_pack, source: falco, types: [t], where: 'raw.v in lists.only_pack'}
rules:
  - {id: user-rule, title: t, severity: low, detect: {match: {any_of: [user_sig, user_pm, user_only_pack, pack_sig]}}}
`)
	set, diags := LoadPaths([]string{user, BuiltinName}, LoadOptions{Now: testNow, Builtin: pack})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eval := func(sig, v string) bool {
		env := &Env{Event: EventEnv{Source: "falco", Type: "t"}, Lists: set.Lists, Raw: map[string]any{"v": v}}
		ok, err := set.SignalsByName[sig].Eval(env)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, tc := range []struct {
		sig, v string
		want   bool
	}{
		{"pack_sig", "pack", true}, {"pack_sig", "user", false},
		{"user_sig", "user", true}, {"user_sig", "pack", false},
		{"user_pm", "pack", true}, {"user_pm", "user", false}, // pm is the pack's, and so are the names in it
		{"user_only_pack", "x", true},
	} {
		if got := eval(tc.sig, tc.v); got != tc.want {
			t.Errorf("%s(v=%s) = %v, want %v", tc.sig, tc.v, got, tc.want)
		}
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range set.Lists {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"builtin.l", "l", "only_pack"}) {
		t.Errorf("list keys %v", got)
	}
	// The pack alone keeps its plain names.
	set, diags = LoadPaths(nil, LoadOptions{Now: testNow, Builtin: pack})
	if diags.HasErrors() || len(set.Lists) != 2 || set.Lists["l"][0] != "pack" {
		t.Errorf("pack alone: %v %v", set.Lists, diags)
	}
	// A user cannot reach a hidden pack list by its run-time key.
	bad := writeFile(t, filepath.Join(dir, "bad", "b.yaml"), header+`
lists:
  l: [user]
signals:
  - {name: b, source: falco, types: [t], where: 'raw.v in lists["builtin.l"]'}
rules:
  - {id: b, title: t, severity: low, detect: {match: {signal: b}}}
`)
	_, diags = LoadPaths([]string{BuiltinName, bad}, LoadOptions{Now: testNow, Builtin: pack})
	if got := diags.Errors().Error(); got != bad+`:7:64: error: where: unknown list "builtin.l"` {
		t.Errorf("got %s", got)
	}
}

// Signal names and rule ids are global: reusing the pack's is an error
// that gives both positions.
func TestBuiltinClashes(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "clash.yaml"), header+`
signals:
  - name: gd_c2
    source: guardduty
    where: 'raw.type == "x"'
rules:
  - id: ecs-reverse-shell
    title: t
    severity: low
    detect: {match: {signal: gd_c2}}
`)
	_, diags := LoadPaths([]string{BuiltinName, p}, LoadOptions{Now: testNow})
	want := p + `:5:11: error: duplicate signal "gd_c2" (first defined at builtin/reverse_shell.yaml:42:5): signal names are global, so a name of the built-in pack cannot be reused (macros and lists can)` + "\n" +
		p + `:9:9: error: duplicate rule id "ecs-reverse-shell" (first defined at builtin/reverse_shell.yaml:59:9): rule ids are global, so a name of the built-in pack cannot be reused (macros and lists can)`
	if got := diags.Errors().Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// The same with the user's paths first: the pack's position is the
	// second one.
	_, diags = LoadPaths([]string{p, BuiltinName}, LoadOptions{Now: testNow})
	if got := diags.Errors().Error(); !strings.HasPrefix(got, `builtin/reverse_shell.yaml:42:11: error: duplicate signal "gd_c2" (first defined at `+p+`:5:5)`) {
		t.Errorf("user first:\n%s", got)
	}
}

// LoadPaths without a path is the pack; `builtin` twice loads it once.
func TestLoadPathsBuiltin(t *testing.T) {
	a, diags := LoadPaths(nil, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b, diags := LoadPaths([]string{BuiltinName, BuiltinName}, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c, diags := LoadFS(rules.Builtin, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(a.Rules) != len(c.Rules) || len(b.Rules) != len(c.Rules) || len(a.Signals) != len(c.Signals) {
		t.Errorf("rules %d %d %d", len(a.Rules), len(b.Rules), len(c.Rules))
	}
	for i := range a.Rules {
		if a.Rules[i].Hash != c.Rules[i].Hash || a.Rules[i].ID != c.Rules[i].ID {
			t.Errorf("rule %d: %s %s vs %s %s", i, a.Rules[i].ID, a.Rules[i].Hash, c.Rules[i].ID, c.Rules[i].Hash)
		}
	}
	if !strings.HasPrefix(a.Files[0], "builtin/") {
		t.Errorf("pack files are named %v", a.Files)
	}
}

// A path that defines nothing, and a load without rules, are errors that
// name the path.
func TestLoadPathsEmpty(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "tests", "x_test.yaml"), "tests: []\n")
	blank := writeFile(t, filepath.Join(dir, "blank.yaml"), "# nothing yet\n")
	headerOnly := writeFile(t, filepath.Join(dir, "header.yaml"), header)
	sigs := writeFile(t, filepath.Join(dir, "sigs.yaml"), header+"signals:\n  - {name: s, source: falco, types: [t], where: 'true'}\n")
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{empty}, empty + ": error: read " + empty + ": folder holds no rule files (*.yaml, *.yml other than *_test.yaml)"},
		{[]string{filepath.Join(dir, "tests")}, filepath.Join(dir, "tests") + ": error: read " + filepath.Join(dir, "tests") + ": folder holds no rule files (*.yaml, *.yml other than *_test.yaml)"},
		{[]string{blank}, blank + ": error: " + blank + " defines no list, macro, signal or rule"},
		{[]string{BuiltinName, headerOnly}, headerOnly + ": error: " + headerOnly + " defines no list, macro, signal or rule"},
		{[]string{sigs}, sigs + ": error: no rules in " + sigs + ": nothing would be correlated"},
	} {
		set, diags := LoadPaths(tc.paths, LoadOptions{})
		if got := diags.Errors().Error(); set != nil || got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.paths, got, tc.want)
		}
	}
}
