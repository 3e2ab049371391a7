package sigma

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The specification's schema test correlations all parse, with the types,
// references, group-by, timespans and conditions written.
func TestParseSpecCorrelations(t *testing.T) {
	files, _ := filepath.Glob("testdata/spec/correlation/*.yml")
	if len(files) != 8 {
		t.Fatalf("%d spec correlation files, want 8", len(files))
	}
	want := map[string]string{
		"event_count.yml":      "event_count [5638f7c0-ac70-491d-8465-2a65075e0d86] by [ComputerName] 1h0m0s gte 100 fields []",
		"event_count_ecs.yml":  "event_count [5638f7c0-ac70-491d-8465-2a65075e0d86] by [dns.question.name] 1h0m0s gte 100 fields []",
		"temporal.yml":         "temporal [recon_cmd_a recon_cmd_b recon_cmd_c] by [ComputerName User] 5m0s - fields []",
		"temporal_ordered.yml": "temporal_ordered [recon_cmd_a recon_cmd_b recon_cmd_c] by [ComputerName User] 5m0s - fields []",
		"value_avg.yml":        "value_avg [rule_a_id] by [SourceIP User] 24h0m0s gt 500 fields [BytesOut]",
		"value_count.yml":      "value_count [5638f7c0-ac70-491d-8465-2a65075e0d86] by [ComputerName WorkstationName] 24h0m0s gte 100 fields [User]",
		"value_percentile.yml": "value_percentile [process_creation] by [ComputerName] 24h0m0s lte 1 fields [Image]",
		"value_sum.yml":        "value_sum [website_access] by [SourceIP User] 1h0m0s gt 1e+06 fields [bytes_sent]",
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rules, corrs, ds := ParseFile(filepath.Base(f), data)
		wantDiags := 0
		if strings.HasSuffix(f, "_ecs.yml") {
			wantDiags = 1 // taxonomy ecs: a warning
		}
		if len(rules) != 0 || len(corrs) != 1 || len(ds) != wantDiags {
			t.Errorf("%s: %d rules %d correlations, diagnostics %v", f, len(rules), len(corrs), ds)
			continue
		}
		c := corrs[0]
		var refs, by []string
		for _, r := range c.Rules {
			refs = append(refs, r.Name)
		}
		for _, g := range c.GroupBy {
			by = append(by, g.Name)
		}
		cond, fields := "-", []string(nil)
		if c.Condition != nil {
			cond = strings.ReplaceAll(c.Condition.String(), "1000000", "1e+06")
			fields = c.Condition.Fields
		}
		got := c.Type + " [" + strings.Join(refs, " ") + "] by [" + strings.Join(by, " ") + "] " + c.Timespan.String() + " " + cond + " fields [" + strings.Join(fields, " ") + "]"
		if w := want[filepath.Base(f)]; got != w {
			t.Errorf("%s:\n got %s\nwant %s", f, got, w)
		}
	}
}

// The chained example: metadata kept, positions of references.
func TestParseCorrelationMetadata(t *testing.T) {
	src := `title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
name: chain
status: experimental
description: Detects multiple failed logins
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
modified: 2024-01-02
taxonomy: sigma
tags:
    - attack.t1110
generate: true
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
    aliases:
        User:
            multiple_failed_login: TargetUser
            successful_login: User
falsepositives:
    - Unlikely
level: high
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: [529, 4625]
    condition: selection
`
	rules, corrs, ds := ParseFile("chain.yml", []byte(src))
	if len(ds) != 0 || len(rules) != 1 || len(corrs) != 1 {
		t.Fatalf("%v", ds)
	}
	c := corrs[0]
	if c.Title != "Correlation - Multiple Failed Logins Followed by Successful Login" || c.ID != "b180ead8-d58f-40b2-ae54-c8940995b9b6" ||
		c.Name != "chain" || c.Status != "experimental" || c.Description != "Detects multiple failed logins" ||
		c.Author != "Florian Roth (Nextron Systems)" || c.Date != "2023-06-16" || c.Modified != "2024-01-02" ||
		c.Taxonomy != "sigma" || c.Level != "high" || !c.Generate || c.Timespan != 10*time.Minute ||
		len(c.References) != 1 || len(c.Tags) != 1 || len(c.FalsePositives) != 1 || c.FalsePositives[0] != "Unlikely" {
		t.Errorf("metadata %+v", c)
	}
	if c.Rules[1].Pos.String() != "chain.yml:19:11" || c.GroupBy[0].Pos.String() != "chain.yml:21:11" {
		t.Errorf("positions %v %v", c.Rules[1].Pos, c.GroupBy[0].Pos)
	}
	if len(c.Aliases) != 1 || len(c.Aliases[0].Fields) != 2 || c.Aliases[0].Fields[0] != (AliasField{Rule: "multiple_failed_login", Field: "TargetUser", Pos: Pos{"chain.yml", 25, 13}}) {
		t.Errorf("aliases %+v", c.Aliases)
	}
	if rules[0].Name != "failed_login" || c.Pos.Line != 1 {
		t.Errorf("detection name %q", rules[0].Name)
	}
}

func TestParseCorrelationErrors(t *testing.T) {
	head := "title: c\ncorrelation:\n"
	for _, c := range []struct {
		name, src, want string
	}{
		{"unknown type", head + "    type: event_cnt\n    rules: [ab]\n    timespan: 1h\n    condition: {gte: 1}\n",
			`c.yml:3:11: error: unknown correlation type "event_cnt"`},
		{"missing rules", head + "    type: temporal\n    timespan: 1h\n    group-by: [a]\n",
			`c.yml:3:5: error: correlation: missing mandatory "rules"`},
		{"missing timespan", head + "    type: temporal\n    rules: [ab, cd]\n    group-by: [a]\n",
			`c.yml:3:5: error: correlation: missing mandatory "timespan"`},
		{"missing title", "correlation:\n    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    group-by: [a]\n",
			`c.yml:1:1: error: missing mandatory "title"`},
		{"bad timespan unit", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 1H\n    group-by: [a]\n",
			`c.yml:5:15: error: timespan "1H": want a number and one of s, m, h, d in lowercase`},
		{"timespan 1h30", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 1h30m\n    group-by: [a]\n",
			`c.yml:5:15: error: timespan "1h30m"`},
		{"zero timespan", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 0s\n    group-by: [a]\n",
			`c.yml:5:15: error: timespan "0s" must be more than 0`},
		{"event_count without condition", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n",
			`c.yml:3:5: error: correlation: event_count needs a condition`},
		{"value_count without field", head + "    type: value_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gte: 3\n",
			`c.yml:8:9: error: correlation: value_count needs condition.field`},
		{"field on event_count", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gte: 3\n        field: x\n",
			`c.yml:8:9: error: correlation: condition.field is for the value_* types, not event_count`},
		{"two fields on value_sum", head + "    type: value_sum\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gte: 3\n        field: [x, y]\n",
			`c.yml:8:9: error: correlation: value_sum aggregates one field`},
		{"unknown op", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        ge: 3\n",
			`c.yml:8:9: error: unknown key "ge" in correlation condition`},
		{"no op", head + "    type: value_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        field: x\n",
			`c.yml:8:9: error: correlation condition needs one of gt, gte, lt, lte, eq, neq`},
		{"text threshold", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gte: many\n",
			`c.yml:8:14: error: condition gte must be a number`},
		{"empty range", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gt: 5\n        lt: 6\n        eq: 7\n",
			`c.yml:8:9: error: correlation condition gt 5, lt 6, eq 7 can never hold`},
		{"event_count lt 1", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        lt: 1\n",
			`c.yml:8:9: error: correlation: condition lt 1 can never hold: event_count counts from 1`},
		{"event_count eq 0", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        eq: 0\n",
			`c.yml:8:9: error: correlation: condition eq 0 can never hold: event_count counts from 1`},
		{"event_count eq 2.5", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        eq: 2.5\n",
			`c.yml:8:9: error: correlation: condition eq 2.5: event_count compares a count, an integer`},
		{"temporal gte 1.5", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gte: 1.5\n",
			`c.yml:8:9: error: correlation: condition gte 1.5: temporal compares a count, an integer`},
		{"event_count between 1 and 2 exclusive", head + "    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        gt: 1\n        lt: 2\n",
			`c.yml:8:9: error: correlation: condition gt 1, lt 2 can never hold: event_count counts from 1`},
		{"value_count lte 0", head + "    type: value_count\n    rules: [ab]\n    timespan: 1h\n    group-by: [a]\n    condition:\n        field: x\n        lte: 0.5\n",
			`c.yml:8:9: error: correlation: condition lte 0.5 can never hold: value_count counts from 1`},
		{"unknown correlation key", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    groupby: [a]\n",
			`c.yml:6:5: error: unknown key "groupby" in correlation`},
		{"duplicate rule", head + "    type: temporal\n    rules: [ab, ab]\n    timespan: 1m\n    group-by: [a]\n",
			`c.yml:4:17: error: correlation rules: "ab" is listed twice`},
		{"one rule temporal", head + "    type: temporal\n    rules: [ab]\n    timespan: 1m\n    group-by: [a]\n",
			`c.yml:4:12: error: correlation: temporal needs at least two rules`},
		{"temporal_ordered condition", head + "    type: temporal_ordered\n    rules: [ab, cd, ef]\n    timespan: 1m\n    group-by: [a]\n    condition:\n        gte: 2\n",
			`c.yml:8:9: error: correlation: temporal_ordered matches every rule in order; a condition other than all 3 rules (gte: 3) is not supported`},
		{"temporal never", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    group-by: [a]\n    condition:\n        gte: 3\n",
			`c.yml:8:9: error: correlation: condition gte 3 can never hold for 2 rules`},
		{"percentile out of range", head + "    type: value_percentile\n    rules: [ab]\n    timespan: 1m\n    group-by: [a]\n    condition:\n        field: x\n        lte: 101\n",
			`c.yml:8:9: error: correlation: value_percentile compares a percentage (0 to 100)`},
		{"logsource in correlation", "title: c\nlogsource:\n    product: aws\n" + "correlation:\n    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    group-by: [a]\n",
			`c.yml:2:1: error: a correlation rule has no logsource`},
		{"generate not bool", "title: c\ngenerate: yes please\n" + "correlation:\n    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    group-by: [a]\n",
			`c.yml:2:11: error: generate must be true or false`},
		{"bad level", "title: c\nlevel: severe\n" + "correlation:\n    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    group-by: [a]\n",
			`c.yml:2:8: error: unknown level "severe"`},
		{"aliases not a map", head + "    type: temporal\n    rules: [ab, cd]\n    timespan: 1m\n    group-by: [ip]\n    aliases:\n        ip: source.ip\n",
			`c.yml:8:13: error: alias "ip" must map rule names to field names`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, corrs, ds := ParseFile("c.yml", []byte(c.src))
			if corrs != nil || !ds.HasErrors() {
				t.Fatalf("accepted:\n%s\n%v", c.src, ds)
			}
			if !strings.Contains(ds.Error(), c.want) {
				t.Errorf("diagnostics:\n%v\nwant one containing:\n%s", ds, c.want)
			}
		})
	}
}

// Warnings: a missing group-by (one group), an unused alias, an unknown
// top-level key (Sigma allows custom fields).
func TestParseCorrelationWarnings(t *testing.T) {
	src := "title: c\ncustom: x\ncorrelation:\n    type: event_count\n    rules: [ab]\n    timespan: 1h\n    condition: {gte: 2}\n    aliases:\n        ip:\n            ab: source.ip\n"
	_, corrs, ds := ParseFile("w.yml", []byte(src))
	if len(corrs) != 1 || ds.HasErrors() {
		t.Fatalf("%v", ds)
	}
	want := "w.yml:2:1: warning: unknown key \"custom\" in a correlation rule; ignored\n" +
		"w.yml:4:5: warning: correlation: event_count has no group-by (the schema requires one): all events of the referred rules form one group\n" +
		"w.yml:9:9: warning: alias \"ip\" is not used in group-by"
	if ds.Error() != want {
		t.Errorf("diagnostics:\n%v\nwant\n%s", ds, want)
	}
	// A group-by given as one string (the schema wants a list) is read as
	// a list of one, and said.
	src = "title: c\ncorrelation:\n    type: event_count\n    rules: [ab]\n    timespan: 1h\n    group-by: user\n    condition: {gte: 2}\n"
	_, corrs, ds = ParseFile("w.yml", []byte(src))
	if len(corrs) != 1 || ds.HasErrors() || len(corrs[0].GroupBy) != 1 || corrs[0].GroupBy[0].Name != "user" {
		t.Fatalf("group-by: user: %+v %v", corrs, ds)
	}
	if want := "w.yml:6:15: warning: correlation group-by is a list in the schema; read as [user]"; ds.Error() != want {
		t.Errorf("diagnostics:\n%v\nwant\n%s", ds, want)
	}
}

// The exported field resolver is the matcher's: nested objects, arrays,
// flattened dotted keys.
func TestFieldResolver(t *testing.T) {
	d := doc(t, `{"a":{"b":[{"c":"x"},{"c":2},{"c":null},{"c":"x"}]},"a.b.c":"flat","n":{"ip":"10.0.0.1"}}`)
	if got := NewField("a.b.c").Strings(d); strings.Join(got, ",") != "x,2,flat" && strings.Join(got, ",") != "flat,x,2" {
		t.Errorf("a.b.c → %v", got)
	}
	if got := NewField("n.ip").Strings(d); len(got) != 1 || got[0] != "10.0.0.1" {
		t.Errorf("n.ip → %v", got)
	}
	if got := NewField("missing").Strings(d); got != nil {
		t.Errorf("missing → %v", got)
	}
	if got := NewField("n").Strings(d); got != nil {
		t.Errorf("an object is no key value: %v", got)
	}
	if x, ok := Number("12.5"); !ok || x != 12.5 {
		t.Error("numeric string")
	}
	if _, ok := Number("abc"); ok {
		t.Error("text is a number")
	}
}

func TestHoldsSomeCount(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		cond CorrCondition
		want bool
	}{
		{CorrCondition{EQ: f(3)}, true},
		{CorrCondition{LT: f(2)}, true}, // 1
		{CorrCondition{LT: f(1)}, false},
		{CorrCondition{LTE: f(0)}, false},
		{CorrCondition{GT: f(1), NEQ: f(2)}, true}, // 3
		{CorrCondition{GT: f(1), LTE: f(2), NEQ: f(2)}, false},
		{CorrCondition{GTE: f(2.5), LT: f(3.5)}, true}, // 3
		{CorrCondition{GTE: f(2.5), LT: f(3)}, false},
		{CorrCondition{NEQ: f(1)}, true},
		{CorrCondition{EQ: f(1.5)}, false},
	} {
		if got := c.cond.holdsSomeCount(); got != c.want {
			t.Errorf("%s: holdsSomeCount = %v, want %v", &c.cond, got, c.want)
		}
	}
}
