package rule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

func sigmaCT(id, name string) string {
	return fmt.Sprintf(`title: %s
id: %s
name: %s
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: %s
    condition: selection
`, name, id, name, name)
}

func loadNamed(files ...string) (*Set, Diagnostics) {
	var srcs []NamedSource
	for i, f := range files {
		srcs = append(srcs, NamedSource{Name: fmt.Sprintf("f%d.yml", i+1), Data: []byte(f)})
	}
	return Load(srcs, LoadOptions{})
}

// A correlation refers to rules of other files, by id or name, and to
// another correlation; each compiles to its engine kind. Referred rules
// raise no incidents (no generate): the detections get no match rule, the
// inner correlation is silent and feeds its derived signal.
func TestSigmaCorrelationCompiles(t *testing.T) {
	outer := `title: outer
id: outer
level: critical
tags: [attack.t1110.001, attack.credential-access]
author: someone
falsepositives: [tests]
correlation:
    type: temporal_ordered
    rules: [many, ok_login]
    group-by: [User]
    timespan: 10m
`
	inner := `title: "many {{ .x }}"
id: inner
name: many
correlation:
    type: event_count
    rules: [11111111-0000-4000-8000-000000000001]
    group-by: [userIdentity.arn]
    timespan: 5m
    condition: {gte: 3, lt: 10}
---
title: rare
id: rare
correlation:
    type: value_percentile
    rules: [bad_login]
    timespan: 1d
    condition: {field: sourceIPAddress, lte: 5}
`
	set, ds := loadNamed(outer, inner, sigmaCT("11111111-0000-4000-8000-000000000001", "bad_login")+"---\n"+sigmaCT("11111111-0000-4000-8000-000000000002", "ok_login"))
	if set == nil {
		t.Fatal(ds)
	}
	var got []string
	for _, r := range set.Rules {
		got = append(got, fmt.Sprintf("%s:%s silent=%v derived=%v by=%d", r.ID, r.Kind, r.Silent, r.Derived != nil, len(r.By)))
	}
	if s := strings.Join(got, " "); s != "outer:sequence silent=false derived=false by=1 inner:threshold silent=true derived=true by=1 rare:threshold silent=false derived=false by=0" {
		t.Errorf("rules: %s", s)
	}
	o := set.Rules[0]
	if o.Severity != pipeline.SeverityCritical || strings.Join(o.Mitre, ",") != "T1110.001" || o.Author != "someone" ||
		o.Origin != "sigma" || len(o.FalsePositives) != 1 || o.Sequence.MaxSpan != 10*time.Minute ||
		o.Sequence.Steps[0].As != "many" || o.Sequence.Steps[0].Signals[0].Name != "sigma_inner" || !o.Sequence.Steps[0].Signals[0].Never ||
		o.Sequence.Steps[1].Signals[0].Name != "sigma_11111111_0000_4000_8000_000000000002" {
		t.Errorf("outer %+v", o)
	}
	in := set.Rules[1]
	if th := in.Threshold; th.Agg != AggCount || !th.Close || th.Window != 5*time.Minute || in.TitleSrc != `many {{"{{"}} .x }}` {
		t.Errorf("inner %+v title %q", th, in.TitleSrc)
	}
	if th := set.Rules[2].Threshold; th.Agg != AggPercentile || !th.Close || *th.Cmp.LTE != 5 {
		t.Errorf("rare %+v", th)
	}
	// The windows decided at their close (inner: lt 10; rare: a
	// percentile) carry a note for the rule's author; outer (a sequence)
	// none.
	var notes []string
	for _, d := range ds {
		if d.Severity == SevNote && strings.Contains(d.Msg, "is decided per window") {
			notes = append(notes, fmt.Sprintf("%s:%d", d.Pos.File, d.Pos.Line))
		}
	}
	if s := strings.Join(notes, " "); s != "f2.yml:9 f2.yml:17" {
		t.Errorf("fixed-window notes at %q, want f2.yml:9 f2.yml:17\n%v", s, ds)
	}
	// The state of a correlation is dropped when a rule it uses changes.
	changed := strings.Replace(sigmaCT("11111111-0000-4000-8000-000000000001", "bad_login"), "eventName: bad_login", "eventName: other", 1)
	set2, ds := loadNamed(outer, inner, changed+"---\n"+sigmaCT("11111111-0000-4000-8000-000000000002", "ok_login"))
	if set2 == nil || set2.Rules[0].Hash == o.Hash || set2.Rules[1].Hash == in.Hash || set2.Rules[2].Hash == set.Rules[2].Hash {
		t.Errorf("hashes do not follow the referred detection (%v)", ds)
	}
}

func TestSigmaCorrelationResolveErrors(t *testing.T) {
	corr := func(id, rules string) string {
		return "title: " + id + "\nid: " + id + "\nname: " + id + "\ncorrelation:\n    type: temporal\n    rules: " + rules + "\n    group-by: [User]\n    timespan: 1m\n"
	}
	det := sigmaCT("11111111-0000-4000-8000-000000000001", "a_det") + "---\n" + sigmaCT("11111111-0000-4000-8000-000000000002", "b_det")
	for _, c := range []struct {
		name  string
		files []string
		want  string
	}{
		{"unknown reference", []string{corr("c1", "[a_det, nope]"), det},
			`f1.yml:6:20: error: sigma: correlation c1 refers to "nope": no loaded Sigma rule has that id or name`},
		{"same rule twice", []string{corr("c1", "[a_det, 11111111-0000-4000-8000-000000000001]"), det},
			`f1.yml:6:20: error: sigma: correlation c1 refers to rule 11111111-0000-4000-8000-000000000001 twice ("a_det" and "11111111-0000-4000-8000-000000000001")`},
		{"cycle", []string{corr("c1", "[c2, a_det]"), corr("c2", "[c1, b_det]"), det},
			`f2.yml:6:13: error: sigma: correlation c2 refers to c1, which refers back to it (a cycle)`},
		{"self", []string{corr("c1", "[c1, a_det]"), det},
			`f1.yml:6:13: error: sigma: correlation c1 refers to c1, which refers back to it (a cycle)`},
		{"duplicate name", []string{corr("c1", "[a_det, b_det]"), det, sigmaCT("11111111-0000-4000-8000-000000000003", "a_det")},
			`f3.yml:1:1: error: sigma: duplicate rule name "a_det" (first defined at f2.yml:1:1)`},
		{"duplicate id", []string{corr("c1", "[a_det, b_det]"), det, corr("c1", "[a_det, b_det]")},
			`f3.yml:2:5: error: sigma: duplicate rule id "c1" (first defined at f1.yml:2:5)`},
		{"alias names another rule", []string{corr("c1", "[a_det, b_det]") + "    aliases:\n        User:\n            a_det: x\n            c_det: y\n", det},
			`f1.yml:12:13: error: sigma: alias "User": "c_det" is not one of correlation c1's rules`},
		{"alias misses a rule", []string{corr("c1", "[a_det, b_det]") + "    aliases:\n        User:\n            a_det: x\n", det},
			`f1.yml:10:9: error: sigma: alias "User" gives no field for rule "b_det" of correlation c1`},
		{"parse error keeps position", []string{corr("c1", "[a_det, b_det]") + "    condition: {lt: x}\n", det},
			`f1.yml:9:21: error: sigma: condition lt must be a number`},
	} {
		t.Run(c.name, func(t *testing.T) {
			set, ds := loadNamed(c.files...)
			if set != nil {
				t.Fatalf("loaded: %v", ds)
			}
			if !strings.Contains(ds.Error(), c.want) {
				t.Errorf("diagnostics:\n%v\nwant one containing:\n%s", ds, c.want)
			}
		})
	}
}

// generate: true on any referring correlation keeps the referred rules'
// own incidents; a detection no correlation refers to keeps its own.
func TestSigmaGenerateRules(t *testing.T) {
	det := sigmaCT("11111111-0000-4000-8000-000000000001", "a_det") + "---\n" + sigmaCT("11111111-0000-4000-8000-000000000002", "b_det") +
		"---\n" + sigmaCT("11111111-0000-4000-8000-000000000003", "c_det")
	for _, c := range []struct {
		gen  string
		want string
	}{
		{"", "c1 11111111-0000-4000-8000-000000000003"},
		{"generate: false\n", "c1 11111111-0000-4000-8000-000000000003"},
		{"generate: true\n", "c1 11111111-0000-4000-8000-000000000001 11111111-0000-4000-8000-000000000002 11111111-0000-4000-8000-000000000003"},
	} {
		set, ds := loadNamed("title: c\nid: c1\n"+c.gen+"correlation:\n    type: temporal\n    rules: [a_det, b_det]\n    group-by: [User]\n    timespan: 1m\n", det)
		if set == nil {
			t.Fatal(ds)
		}
		var ids []string
		for _, r := range set.Rules {
			ids = append(ids, r.ID)
		}
		if s := strings.Join(ids, " "); s != c.want {
			t.Errorf("%q: rules %s, want %s", c.gen, s, c.want)
		}
	}
}
