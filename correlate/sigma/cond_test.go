package sigma

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestConditionGrammar evaluates conditions over selections a, b, c that
// match when the record has the field of the same name set to 1, for every
// combination of the three.
func TestConditionGrammar(t *testing.T) {
	sels := "sel_a:\n    a: 1\nsel_b:\n    b: 1\nsel_c:\n    c: 1\n_helper:\n    h: 1\n"
	for _, c := range []struct {
		cond string
		want func(a, b, c bool) bool
	}{
		{"sel_a", func(a, b, c bool) bool { return a }},
		{"sel_a or sel_b and sel_c", func(a, b, c bool) bool { return a || (b && c) }},
		{"sel_a and sel_b or sel_c", func(a, b, c bool) bool { return (a && b) || c }},
		{"(sel_a or sel_b) and sel_c", func(a, b, c bool) bool { return (a || b) && c }},
		{"not sel_a and sel_b", func(a, b, c bool) bool { return !a && b }},
		{"not (sel_a and sel_b)", func(a, b, c bool) bool { return !(a && b) }},
		{"not not sel_a", func(a, b, c bool) bool { return a }},
		{"sel_a and not sel_b or not sel_c", func(a, b, c bool) bool { return (a && !b) || !c }},
		{"1 of sel_*", func(a, b, c bool) bool { return a || b || c }},
		{"all of sel_*", func(a, b, c bool) bool { return a && b && c }},
		{"1 of them", func(a, b, c bool) bool { return a || b || c }}, // _helper excluded
		{"all of them", func(a, b, c bool) bool { return a && b && c }},
		{"not 1 of sel_*", func(a, b, c bool) bool { return !(a || b || c) }},
		{"not all of sel_* and sel_a", func(a, b, c bool) bool { return !(a && b && c) && a }},
		{"1 of sel_* and not sel_b", func(a, b, c bool) bool { return (a || b || c) && !b }},
		{"1 of *_b or sel_c", func(a, b, c bool) bool { return b || c }},
		{"all of sel_[ab]", nil}, // see errors test: [ is not a wildcard
		{"1 of s*l_?", nil},
		{"sel_a AND (sel_b OR sel_c)", func(a, b, c bool) bool { return a && (b || c) }},
		{"((sel_a))", func(a, b, c bool) bool { return a }},
	} {
		if c.want == nil {
			continue
		}
		m := compileDetection(t, sels+"condition: "+c.cond)
		for i := 0; i < 8; i++ {
			a, b, cc := i&1 != 0, i&2 != 0, i&4 != 0
			d := map[string]any{"h": 1.0}
			if a {
				d["a"] = 1.0
			}
			if b {
				d["b"] = 1.0
			}
			if cc {
				d["c"] = 1.0
			}
			if got, want := m.Match(d), c.want(a, b, cc); got != want {
				t.Errorf("%q on a=%v b=%v c=%v: got %v, want %v", c.cond, a, b, cc, got, want)
			}
		}
	}
	// A list of conditions is ORed.
	m := compileDetection(t, sels+"condition:\n    - sel_a and sel_b\n    - sel_c")
	for _, c := range []struct {
		d    map[string]any
		want bool
	}{
		{map[string]any{"a": 1.0, "b": 1.0}, true},
		{map[string]any{"c": 1.0}, true},
		{map[string]any{"a": 1.0}, false},
	} {
		if got := m.Match(c.d); got != c.want {
			t.Errorf("condition list on %v: got %v", c.d, got)
		}
	}
}

func TestConstraintsAndFields(t *testing.T) {
	for _, c := range []struct {
		det  string
		want string
	}{
		{"sel:\n    eventSource: S3.amazonaws.com\n    eventName: [ListBuckets, GetObject]\ncondition: sel",
			"eventName=getobject,listbuckets eventSource=s3.amazonaws.com"},
		{"a:\n    eventName: A\nb:\n    eventName: B\n    x: 1\ncondition: 1 of them",
			"eventName=a,b"},
		{"a:\n    eventName: A\nb:\n    eventSource: B\ncondition: a or b", ""},
		{"a:\n    eventName: A\nf:\n    eventName: B\ncondition: a and not f", "eventName=a"},
		{"a:\n    eventName: [A, B]\nb:\n    eventName: [B, C]\ncondition: a and b", "eventName=b"},
		{"a:\n    eventName: A\nb:\n    eventName: C\ncondition: a and b", "eventName="}, // never matches
		{"a:\n    eventName|startswith: A\ncondition: a", ""},
		{"a:\n    eventName|cased: AbC\ncondition: a", "eventName=abc"},
		{"a:\n    eventName: 'A*'\ncondition: a", ""},
		{"a:\n    eventName: 'A\\*'\ncondition: a", "eventName=a*"},
		{"a:\n    userIdentity.type: Root\ncondition: a", ""},
		{"a:\n    - eventName: A\n    - eventName: B\ncondition: a", "eventName=a,b"},
		{"a:\n    - eventName: A\n    - eventSource: B\ncondition: a", ""},
		{"a:\n    eventName|neq: A\ncondition: a", ""},
		{"a:\n    eventName: A\ncondition:\n    - a\n    - a", "eventName=a"},
	} {
		m := compileDetection(t, c.det)
		var got []string
		cons := m.Constraints()
		for _, k := range slices.Sorted(mapsKeys(cons)) {
			got = append(got, k+"="+strings.Join(cons[k], ","))
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%s\nconstraints %q, want %q", c.det, g, c.want)
		}
		// Every constraint is necessary: a record violating it never matches.
		for k := range cons {
			if m.Match(map[string]any{k: "zz-not-a-value"}) {
				t.Errorf("%s: matched with %s violating its constraint", c.det, k)
			}
		}
	}
	m := compileDetection(t, "a:\n    userIdentity.arn|fieldref: requestParameters.userName\n    eventName: x\nunused:\n    other: 1\ncondition: a")
	if got := strings.Join(m.Fields(), " "); got != "eventName requestParameters requestParameters.userName userIdentity userIdentity.arn" {
		t.Errorf("Fields() = %q", got)
	}
	if m.FullScan() {
		t.Error("FullScan() = true without keywords")
	}
}

func mapsKeys(m map[string][]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestErrors checks that what cannot be evaluated exactly is refused, at
// its position.
func TestErrors(t *testing.T) {
	head := "title: t\nlogsource:\n    product: aws\ndetection:\n"
	for _, c := range []struct {
		name, src, want string
	}{
		{"unknown modifier", head + "    sel:\n        f|contians: x\n    condition: sel\n",
			`t.yml:6:11: error: unknown modifier "contians"`},
		{"second unknown modifier", head + "    sel:\n        f|contains|foo: x\n    condition: sel\n",
			`t.yml:6:20: error: unknown modifier "foo"`},
		{"undefined selection", head + "    sel:\n        f: x\n    condition: sel and filter\n",
			`t.yml:7:24: error: condition: undefined search identifier "filter"`},
		{"quoted condition", head + "    sel:\n        f: x\n    condition: 'sel or (nope)'\n",
			`t.yml:7:25: error: condition: undefined search identifier "nope"`},
		{"bad regex (lookahead)", head + "    sel:\n        f|re: 'a(?=b)'\n    condition: sel\n",
			`t.yml:6:15: error: re "a(?=b)" cannot be evaluated by Go's RE2 engine`},
		{"backreference", head + "    sel:\n        f|re: '(a)\\1'\n    condition: sel\n",
			`t.yml:6:15: error: re "(a)\\1" cannot be evaluated`},
		{"PCRE \\v", head + "    sel:\n        f|re: 'a\\vb'\n    condition: sel\n",
			`t.yml:6:15: error: re "a\\vb": \v means vertical whitespace`},
		{"i without re", head + "    sel:\n        f|contains|i: x\n    condition: sel\n",
			`t.yml:6:20: error: modifier "i" is a sub-modifier of re`},
		{"expand", head + "    sel:\n        f|expand: '%Servers%'\n    condition: sel\n",
			`t.yml:6:11: error: unsupported modifier "expand"`},
		{"time modifier", head + "    sel:\n        f|hour: 3\n    condition: sel\n",
			`t.yml:6:11: error: unsupported modifier "hour"`},
		{"aggregation", head + "    sel:\n        f: x\n    condition: sel | count() > 5\n",
			`t.yml:7:20: error: condition: the aggregation syntax`},
		{"timeframe", head + "    sel:\n        f: x\n    timeframe: 5m\n    condition: sel\n",
			`t.yml:7:5: error: timeframe belongs to the removed aggregation syntax`},
		{"2 of", head + "    sel:\n        f: x\n    condition: 2 of sel*\n",
			`t.yml:7:16: error: condition: "2" of: only '1 of' and 'all of' exist`},
		{"pattern matches nothing", head + "    sel:\n        f: x\n    condition: 1 of filter*\n",
			`t.yml:7:21: error: condition: "filter*" matches no search identifier`},
		{"bare pattern", head + "    sel:\n        f: x\n    condition: sel*\n",
			`t.yml:7:16: error: condition: "sel*": a pattern needs '1 of' or 'all of'`},
		{"[ is not a wildcard", head + "    sel_a:\n        f: x\n    condition: all of sel_[ab]\n",
			`matches no search identifier`},
		{"unbalanced", head + "    sel:\n        f: x\n    condition: (sel\n",
			`t.yml:7:20: error: condition: missing ')'`},
		{"trailing", head + "    sel:\n        f: x\n    condition: sel sel\n",
			`t.yml:7:20: error: condition: unexpected "sel"`},
		{"dangling and", head + "    sel:\n        f: x\n    condition: sel and\n",
			`error: condition: condition ends where`},
		{"null in list", head + "    sel:\n        f:\n            - a\n            - null\n    condition: sel\n",
			`t.yml:8:15: error: field "f": null cannot be part of a list`},
		{"all with one value", head + "    sel:\n        f|all: a\n    condition: sel\n",
			`t.yml:6:9: error: modifier all needs a list of at least two values`},
		{"base64 of wildcard", head + "    sel:\n        f|contains|base64: a\n    condition: sel\n",
			`t.yml:6:28: error: base64 cannot encode a value holding wildcards`},
		{"numeric on string", head + "    sel:\n        f|gt: 'ten'\n    condition: sel\n",
			`t.yml:6:15: error: gt takes a number`},
		{"bad cidr", head + "    sel:\n        f|cidr: 10.0.0.0/33\n    condition: sel\n",
			`t.yml:6:17: error: cidr: "10.0.0.0/33" is not a network`},
		{"contains and startswith", head + "    sel:\n        f|contains|startswith: a\n    condition: sel\n",
			`t.yml:6:20: error: modifier "startswith" cannot be combined with "contains"`},
		{"re after contains", head + "    sel:\n        f|contains|re: a\n    condition: sel\n",
			`t.yml:6:20: error: modifier "re" cannot follow "contains"`},
		{"exists not bool", head + "    sel:\n        f|exists: yes please\n    condition: sel\n",
			`t.yml:6:9: error: exists takes true or false`},
		{"nested map value", head + "    sel:\n        f:\n            g: 1\n    condition: sel\n",
			`t.yml:7:13: error: field "f": value must be a scalar or a list of scalars`},
		{"duplicate key", head + "    sel:\n        f: a\n        f: b\n    condition: sel\n",
			`t.yml:7:9: error: selection: duplicate key "f"`},
		{"error in unused selection", head + "    sel:\n        f: a\n    other:\n        g|nope: b\n    condition: sel\n",
			`t.yml:8:11: error: unknown modifier "nope"`},
		{"missing detection", "title: t\nlogsource:\n    product: aws\n",
			`t.yml:1:1: error: missing mandatory "detection"`},
		{"no condition", head + "    sel:\n        f: a\n",
			`t.yml:5:5: error: detection has no condition`},
		{"bad level", head + "    sel:\n        f: a\n    condition: sel\nlevel: severe\n",
			`t.yml:8:8: error: unknown level "severe"`},
		{"action global", "action: global\ntitle: t\n---\n" + head + "    sel:\n        f: a\n    condition: sel\n",
			`t.yml:1:1: error: multi-document rule collections (action: global/reset/repeat) were removed`},
		{"two rules in Parse", head + "    sel:\n        f: a\n    condition: sel\n---\n" + head + "    sel:\n        f: a\n    condition: sel\n",
			`t.yml:9:1: error: file holds 2 rules; Parse takes one (use ParseAll)`},
		{"correlation", "title: c\ncorrelation:\n    type: event_count\n",
			`t.yml:3:5: error: a Sigma correlation rule: ParseAll reads detection rules only (use ParseFile)`},
		{"related without type", "related:\n    - id: 0b8b7e3c-0000-4000-8000-000000000008\n" + head + "    sel:\n        f: a\n    condition: sel\n",
			`t.yml:2:7: error: related entry needs a type`},
		{"related without id", "related:\n    - type: derived\n" + head + "    sel:\n        f: a\n    condition: sel\n",
			`t.yml:2:7: error: related entry needs an id`},
		{"yaml syntax", "title: [\n", `t.yml:1:0: error: YAML:`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, ds := Parse("t.yml", []byte(c.src))
			if r != nil {
				t.Fatalf("accepted:\n%s", c.src)
			}
			if !strings.Contains(ds.Error(), c.want) {
				t.Errorf("diagnostics:\n%v\nwant one containing:\n%s", ds, c.want)
			}
		})
	}
}

func TestParseMetadataAndMultiDoc(t *testing.T) {
	data, err := os.ReadFile("testdata/spec/rule_1.yml")
	if err != nil {
		t.Fatal(err)
	}
	r, ds := Parse("rule_1.yml", data)
	if r == nil || len(ds) != 0 {
		t.Fatalf("spec test rule: %v", ds)
	}
	got := fmt.Sprintf("%s|%s|%s|%v|%s|%s|%s|%v|%s/%s|%v|%s|%v",
		r.Title, r.ID, r.Status, r.Related, r.Author, r.Date, r.Modified, r.References,
		r.LogSource.Product, r.LogSource.Service, r.Tags, r.Level, r.FalsePositives)
	want := "A Title|545a5da6-f103-4919-a519-e9aec1026ee4|test|[{6c82cf5c-090d-4d57-9188-533577631108 similar}]|SomeOne|2017-05-09|2023-04-14|[https://123.456 https://789.963]|windows/application|[attack.defense-evasion attack.t1211 attack.t1562.001]|high|[a string]"
	if got != want {
		t.Errorf("metadata\n got %s\nwant %s", got, want)
	}
	if s := r.Detection.Selections["selection"]; s == nil || s.Pos.Line != 22 || s.Groups[0][0].Field != "Provider_Name" {
		t.Errorf("selection position/field: %+v", s)
	}
	m, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match(map[string]any{"Provider_Name": "application error"}) {
		t.Error("rule_1 does not match its own selection")
	}

	data, err = os.ReadFile("testdata/spec/rule_ecs.yml")
	if err != nil {
		t.Fatal(err)
	}
	r, ds = Parse("rule_ecs.yml", data)
	if r == nil || len(ds) != 1 || ds[0].Severity != SevWarning {
		t.Fatalf("rule_ecs: want one taxonomy warning, got %v", ds)
	}
	m, _ = Compile(r)
	if !m.Match(map[string]any{"dns": map[string]any{"question": map[string]any{"name": "SigmaHQ"}}}) {
		t.Error("rule_ecs does not match a nested dns.question.name")
	}

	// Several rules in one file, one per document.
	files, _ := filepath.Glob("testdata/aws_cloudtrail/aws_delete_*.yml")
	var all []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all = append(append(all, "---\n"...), b...)
	}
	rules, ds := ParseAll("multi.yml", all)
	if ds.HasErrors() || len(rules) != len(files) || len(files) != 2 {
		t.Fatalf("ParseAll: %d rules from %d files: %v", len(rules), len(files), ds)
	}
	if rules[1].Pos.Line <= rules[0].Pos.Line {
		t.Errorf("second document position %v not after the first %v", rules[1].Pos, rules[0].Pos)
	}
}

// Tags are unique in the schema: a repeat is a warning and is dropped.
func TestParseDuplicateTag(t *testing.T) {
	src := "title: t\ntags:\n    - attack.t1078\n    - attack.t1078.004\n    - attack.t1078\nlogsource:\n    product: aws\ndetection:\n    sel:\n        f: a\n    condition: sel\n"
	r, ds := Parse("t.yml", []byte(src))
	if r == nil || ds.HasErrors() {
		t.Fatalf("%v", ds)
	}
	if got := strings.Join(r.Tags, " "); got != "attack.t1078 attack.t1078.004" {
		t.Errorf("tags %q", got)
	}
	if want := `t.yml:5:7: warning: tag "attack.t1078" is listed twice`; ds.Error() != want {
		t.Errorf("diagnostics:\n%v\nwant %s", ds, want)
	}
}
