package rule

import (
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const header = "apiVersion: ecscorr/v1\nkind: RuleFile\n"

// baseSignals are appended to rule cases (lines counted after the case body).
const baseSignals = `
signals:
  - name: exec
    source: cloudtrail
    where: 'raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "ExecuteCommand"'
  - name: shell
    source: falco
    where: 'raw.rule == "Reverse Shell"'
    fields: {dest: 'raw.output_fields["fd.sip"] ?? ""'}
  - name: cpu
    source: container_insights
    where: 'raw.Type == "Task"'
    fields: {value: 'raw.CpuUtilized'}
`

func loadString(t *testing.T, body string, opts LoadOptions) (*Set, Diagnostics) {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = testNow
	}
	return Load([]NamedSource{{Name: "t.yaml", Data: []byte(header + body)}}, opts)
}

// TestDiagnostics pins position and message of every check. Line numbers
// count the two header lines: the body starts on line 3.
func TestDiagnostics(t *testing.T) {
	cases := []struct {
		name string
		body string
		opts LoadOptions
		want []string // "line:col: severity: substring", all of them, in order
	}{
		{"unknown top key", "rulez: []\n", LoadOptions{},
			[]string{`3:1: error: unknown key "rulez" in rule file`}},
		{"bad apiVersion", "", LoadOptions{}, nil},
		{"unknown field", `
signals:
  - name: s
    source: falco
    where: 'event.foo == "x"'
`, LoadOptions{}, []string{"7:19: error: where: type rule.EventEnv has no field foo"}},
		{"unknown entity field", `
signals:
  - name: s
    source: falco
    where: 'entity.task == "x"'
`, LoadOptions{}, []string{"7:20: error: where: type rule.EntityEnv has no field task"}},
		{"folded expression error line", `
signals:
  - name: s
    source: cloudtrail
    where: >
      raw.eventSource == "ecs.amazonaws.com"
      && event.typo == 1
`, LoadOptions{}, []string{"9:16: error: where: type rule.EventEnv has no field typo"}},
		{"literal expression error indented", `
signals:
  - name: s
    source: falco
    where: |
      raw.rule == "a" &&
        nosuchname
`, LoadOptions{}, []string{"9:9: error: where: unknown name nosuchname"}},
		{"multi-line plain scalar", `
signals:
  - name: s
    source: falco
    where: raw.rule == "a"
      && event.nope == 1
`, LoadOptions{}, []string{"8:16: error: where: type rule.EventEnv has no field nope"}},
		{"double quoted", `
signals:
  - name: s
    source: falco
    where: "raw.rule == 1 +"
`, LoadOptions{}, []string{"7:27: error: where: unexpected token EOF"}},
		{"wrong result type", `
signals:
  - name: s
    source: falco
    where: '"a" + "b"'
`, LoadOptions{}, []string{"7:12: error: where: expected bool, but got string"}},
		{"mismatched types", `
signals:
  - name: s
    source: falco
    where: '"x" + 1 == 2'
`, LoadOptions{}, []string{"7:17: error: where: invalid operation: + (mismatched types string and int)"}},
		{"unknown list", `
lists: {shells: [sh]}
signals:
  - name: s
    source: falco
    where: 'raw.rule in lists.shels'
`, LoadOptions{}, []string{`8:31: error: where: unknown list "shels"`}},
		{"unknown source and missing where", `
signals:
  - name: s
    source: syslog
`, LoadOptions{}, []string{`5:5: error: signal s: missing where`, `6:13: error: signal s: unknown source "syslog"`}},
		{"unknown signal key", `
signals:
  - name: s
    source: falco
    where: 'true'
    colour: red
`, LoadOptions{}, []string{`8:5: error: unknown key "colour" in signal s (want one of: name, source, types, where, fields, sample)`}},
		{"duplicate signal across docs", `
signals:
  - {name: s, source: falco, types: [x], where: 'true'}
---
` + header + `
signals:
  - {name: s, source: falco, types: [x], where: 'false'}
`, LoadOptions{}, []string{`11:12: error: duplicate signal "s" (first defined at t.yaml:5:5)`}},
		{"macro cycle", `
macros:
  a: 'b && true'
  b: 'a'
`, LoadOptions{}, []string{"5:6: error: macro cycle: a → b → a"}},
		{"macro error points at use", `
macros:
  bad: 'event.nope == ""'
signals:
  - {name: s, source: falco, where: 'raw.x == 1 && bad'}
`, LoadOptions{}, []string{"7:52: error: where: type rule.EventEnv has no field nope"}},
		{"reserved macro", "macros: {raw: 'true'}\n", LoadOptions{},
			[]string{`3:10: error: macro name "raw" is reserved`}},
		{"unknown signal in rule", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: nope}}
`, LoadOptions{}, []string{`7:30: error: unknown signal "nope"`}},
		{"bad severity", `
rules:
  - id: r
    severity: urgent
    detect: {match: {signal: exec}}
` + baseSignals, LoadOptions{}, []string{`6:15: error: unknown severity "urgent"`}},
		{"zero detect kinds", `
rules:
  - id: r
    severity: high
    detect: {}
` + baseSignals, LoadOptions{}, []string{`7:13: error: detect: exactly one of match, threshold, sequence, temporal, metric is required, got none`}},
		{"two detect kinds", `
rules:
  - id: r
    severity: high
    detect:
      match: {signal: exec}
      threshold: {signal: exec, window: 5m, count: {gte: 2}}
` + baseSignals, LoadOptions{}, []string{`9:7: error: detect: exactly one of match, threshold, sequence, temporal, metric is required, got match and threshold`}},
		{"duplicate rule id", `
rules:
  - {id: r, severity: high, detect: {match: {signal: exec}}}
  - {id: r, severity: low, detect: {match: {signal: exec}}}
` + baseSignals, LoadOptions{}, []string{`6:10: error: duplicate rule id "r" (first defined at t.yaml:5:10)`}},
		{"window above retention", `
rules:
  - id: r
    severity: high
    detect: {threshold: {signal: exec, window: 8d, count: {gte: 2}}}
` + baseSignals, LoadOptions{}, []string{`7:48: error: threshold.window 8d exceeds the retention limit 7d`}},
		{"custom retention", `
rules:
  - id: r
    severity: high
    detect: {threshold: {signal: exec, window: 2h, count: {gte: 2}}}
` + baseSignals, LoadOptions{MaxRetention: time.Hour}, []string{`7:48: error: threshold.window 2h exceeds the retention limit 1h`}},
		{"bad duration", `
rules:
  - id: r
    severity: high
    detect: {threshold: {signal: exec, window: 5 minutes, count: {gte: 2}}}
` + baseSignals, LoadOptions{}, []string{`7:48: error: threshold.window: invalid duration "5 minutes"`}},
		{"missing comparison and two aggregates", `
rules:
  - id: r
    severity: high
    detect:
      threshold:
        signal: exec
        window: 5m
        count: {}
  - id: r2
    severity: high
    detect:
      threshold: {signal: exec, window: 5m, count: {gte: 1}, sum: {field: "1", gt: 2}}
` + baseSignals, LoadOptions{}, []string{
			`11:16: error: threshold.count: missing comparison`,
			`15:62: error: threshold: exactly one of count, distinct, sum, avg is required, got count and sum`}},
		{"baseline over 30d", `
rules:
  - id: r
    severity: high
    detect:
      metric:
        series: cpu
        expr: 'value > baseline'
        baseline: {over: 31d}
` + baseSignals, LoadOptions{}, []string{`11:26: error: baseline.over 31d exceeds the baseline limit 30d`}},
		{"metric expr unknown name and series without value", `
rules:
  - id: r
    severity: high
    detect:
      metric: {series: exec, expr: 'valu > 1'}
` + baseSignals, LoadOptions{}, []string{
			`8:24: error: metric: series signal "exec" has no field "value"`,
			`8:37: error: metric.expr: unknown name valu`}},
		{"exception without reason and expires, expired warning", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: exec}}
    exceptions:
      - name: e1
        fields: [entity.cluster]
        values: [[prod]]
      - name: e2
        fields: [entity.cluster]
        values: [[prod]]
        reason: legacy
        expires: 2025-12-31
      - name: e3
        fields: [entity.cluster, entity.service]
        comps: ["==", "like"]
        values: [[prod]]
        reason: legacy
        expires: 31/12/2026
      - name: e4
        fields: [raw.port]
        comps: [startsWith]
        values: [[80]]
        reason: numbers have no prefix
        expires: 2026-12-31
` + baseSignals, LoadOptions{}, []string{
			`9:9: error: exception e1: missing reason`,
			`9:9: error: exception e1: missing expires`,
			`16:18: warning: exception e2 of rule r expired on 2025-12-31`,
			`19:23: error: comps: unknown comparison "like"`,
			`20:18: error: exception e3: row has 1 values for 2 fields`,
			`22:18: error: exception e3: expires: invalid date "31/12/2026"`,
			`26:18: error: exception e4: value 1 is compared with startsWith and must be a string (quote it)`}},
		{"unknown by field", `
rules:
  - id: r
    severity: high
    by: [task_arn, taskarn, {name: principal_arn, expr: 'raw.userIdentity.arn'}]
    detect: {match: {signal: exec}}
` + baseSignals, LoadOptions{}, []string{`7:20: error: by: unknown entity field "taskarn"`}},
		{"template errors", `
rules:
  - id: r
    severity: high
    title: "{{ .rule.id "
    detect: {match: {signal: exec}}
    output:
      summary: '{{ trunc "x" .rule.id }}'
` + baseSignals, LoadOptions{}, []string{
			`7:12: error: title: title:1: unclosed action`,
			`10:16: error: summary: summary:1:9: executing "summary" at <"x">: expected integer`}},
		{"template field names", `
rules:
  - id: r1
    severity: high
    title: '{{ with .steps.exec }}{{ .fields.x }}{{ end }} {{ .steps.exe.raw.x }}'
    detect: {match: {signal: exec, as: exec}}
  - id: r2
    severity: high
    detect: {match: {signal: exec, as: exec}}
    output: {summary: '{{ .entity.taskarn }}', remediation: '{{ .steps.exec.row }}'}
    dedup: {key: '{{ .rule.id }}/{{ .key.task_arn }}/{{ .labels.x }}'}
` + baseSignals, LoadOptions{}, []string{
			`7:12: error: title: unknown step alias .steps.exe (want one of: exec)`,
			`12:23: error: summary: unknown entity field .entity.taskarn`,
			`12:61: error: remediation: unknown step field .steps.exec.row`,
			`13:18: error: dedup.key: unknown field .labels`}},
		{"broken detect does not cascade into alias errors", `
rules:
  - id: r
    severity: high
    title: '{{ .steps.exec.raw.x }}'
    detect: {match: {signal: exec, as: exec}, threshold: {}}
    output: {fields: {x: 'steps.exec.raw'}}
` + baseSignals, LoadOptions{}, []string{`8:47: error: detect: exactly one of`}},
		{"absent steps", `
rules:
  - id: r1
    severity: high
    detect:
      sequence:
        maxspan: 1h
        steps:
          - {absent: exec}
          - {signal: shell}
  - id: r2
    severity: high
    detect:
      sequence:
        maxspan: 1h
        steps:
          - {signal: exec}
          - {absent: shell}
  - id: r3
    severity: high
    detect:
      sequence:
        maxspan: 1h
        steps:
          - {signal: exec, for: 5m}
          - {absent: shell}
          - {absent: exec, for: 5m}
` + baseSignals, LoadOptions{}, []string{
			`11:14: error: steps[0]: a sequence cannot start with an absent step`,
			`20:14: error: steps[1]: a trailing absent step needs for`,
			`27:28: error: steps[0]: for is only allowed on a trailing absent step`,
			`29:14: error: steps[2]: absent steps cannot be adjacent`}},
		{"route to undefined sink", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: exec}}
    route: [slack, pagerduty]
` + baseSignals, LoadOptions{Sinks: []string{"slack"}}, []string{`8:20: error: route: undefined sink "pagerduty"`}},
		{"routes unchecked without sinks", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: exec}}
    route: [slack, pagerduty]
` + baseSignals, LoadOptions{}, nil},
		{"unknown keys in nested maps", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: exec, alias: x}}
    output: {summary: ok, evidence: {max: 3}}
    dedup: {window: 1h, keys: x}
` + baseSignals, LoadOptions{}, []string{
			`7:36: error: unknown key "alias" in match`,
			`8:38: error: unknown key "max" in evidence`,
			`9:25: error: unknown key "keys" in dedup`}},
		{"output expressions", `
rules:
  - id: r
    severity: high
    severity_override:
      - {when: 'steps.exec.signal == "exec" && agg.cnt > 1', severity: critical}
    detect: {match: {signal: exec, as: exec}}
    output:
      fields: {who: 'entity.princpal', where: 'key.cluster'}
` + baseSignals, LoadOptions{}, []string{
			`8:52: error: severity_override.when: unknown agg field "cnt"`,
			`11:29: error: output.fields.who: unknown entity field "princpal"`,
			`11:52: error: output.fields.where: unknown key field "cluster"`}},
		{"unknown step alias", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: exec, as: change}}
    output: {fields: {x: 'steps.chnage.raw'}}
` + baseSignals, LoadOptions{}, []string{`8:33: error: output.fields.x: unknown step alias "chnage"`}},
		{"temporal condition", `
rules:
  - id: r
    severity: high
    detect:
      temporal:
        window: 10m
        signals: {a: exec, b: shell}
        condition: 'a && c'
` + baseSignals, LoadOptions{}, []string{`11:26: error: temporal.condition: unknown name c`}},
		{"metric_clears on match rule", `
rules:
  - id: r
    severity: high
    detect: {match: {signal: exec}}
    resolve: {metric_clears: true}
` + baseSignals, LoadOptions{}, []string{`8:30: error: resolve.metric_clears is only valid for metric rules`}},
		{"yaml syntax error", "signals: [\n", LoadOptions{}, []string{`3:10: error: yaml: did not find expected node content`}},
		{"disabled rule is still checked", `
rules:
  - id: r
    enabled: false
    severity: high
    detect: {match: {signal: nope}}
` + baseSignals, LoadOptions{}, []string{`8:30: error: unknown signal "nope"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := loadString(t, tc.body, tc.opts)
			var got []string
			for _, d := range diags {
				if d.Severity == SevNote {
					continue
				}
				got = append(got, strings.TrimPrefix(d.String(), "t.yaml:"))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) && !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("diagnostic %d:\n got %s\nwant %s…", i, got[i], tc.want[i])
				}
			}
		})
	}
}
