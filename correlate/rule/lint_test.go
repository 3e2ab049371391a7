package rule

import (
	"fmt"
	"strings"
	"testing"
)

// lintSignals are appended to the lint cases (lines counted after the body).
const lintSignals = `
signals:
  - name: exec
    source: cloudtrail
    where: 'raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "ExecuteCommand"'
    fields: {principal: 'raw.userIdentity.arn', cmd: 'raw.requestParameters.command'}
  - name: iam_user
    source: cloudtrail
    where: 'raw.eventSource == "iam.amazonaws.com" && raw.eventName == "CreateUser"'
    fields: {user: 'raw.requestParameters.userName'}
  - name: shell
    source: falco
    where: 'raw.rule == "Reverse Shell"'
    fields: {dest: 'raw.output_fields["fd.sip"] ?? ""'}
  - name: gd_shell
    source: guardduty
    where: 'raw.type == "Execution:Runtime/ReverseShell"'
    fields: {finding: 'raw.id'}
`

// TestLint pins the exact text and position of every lint and reference
// check (lint.go, refcheck.go). Lines count the two header lines.
func TestLint(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // every warning and error, exactly, without "t.yaml:"
	}{
		{"cloudtrail rule keyed by the default task_arn", `
rules:
  - id: r
    severity: low
    detect: {match: {signal: iam_user}}
` + lintSignals, []string{
			`5:9: warning: rule r is keyed by [task_arn] (the default), but all its signals are CloudTrail signals, and CloudTrail records carry account, region and principal, and a task only on the ECS calls RunTask, StartTask, StopTask, ExecuteCommand, SubmitTaskStateChange and SubmitContainerStateChange: events of signal iam_user (iam.amazonaws.com:CreateUser) without it have no key and are dropped (counted in NoKey); key by [account, region] or [principal], or by {name, expr} over raw (e.g. the request's resource)`,
		}},
		{"ExecuteCommand carries the task", `
rules:
  - id: r
    severity: low
    detect: {match: {signal: exec}}
` + lintSignals, nil},
		{"cloudtrail rule keyed by cluster and service", `
rules:
  - id: r
    severity: low
    by: [cluster, service]
    detect: {match: {signal: iam_user}}
` + lintSignals, []string{
			`7:9: warning: rule r is keyed by [cluster, service], but all its signals are CloudTrail signals, and CloudTrail records carry account, region and principal, and a cluster only on the ECS calls that name one; a service only on the ECS calls CreateService, UpdateService, DeleteService, UpdateServicePrimaryTaskSet, CreateTaskSet, UpdateTaskSet, DeleteTaskSet and DescribeTaskSets: events of signal iam_user (iam.amazonaws.com:CreateUser) without any of them have no key and are dropped (counted in NoKey); key by [account, region] or [principal], or by {name, expr} over raw (e.g. the request's resource)`,
		}},
		{"account in the key: never dropped", `
rules:
  - id: r
    severity: low
    by: [account, cluster]
    detect: {match: {signal: iam_user}}
` + lintSignals, nil},
		{"task_arn with account: still dropped", `
rules:
  - id: r
    severity: low
    by: [account, task_arn]
    detect: {match: {signal: iam_user}}
` + lintSignals, []string{
			`7:9: warning: rule r is keyed by [account, task_arn], but all its signals are CloudTrail signals, and CloudTrail records carry account, region and principal, and a task only on the ECS calls RunTask, StartTask, StopTask, ExecuteCommand, SubmitTaskStateChange and SubmitContainerStateChange: events of signal iam_user (iam.amazonaws.com:CreateUser) without it have no key and are dropped (counted in NoKey); key by [account, region] or [principal], or by {name, expr} over raw (e.g. the request's resource)`,
		}},
		{"mixed sources: no warning", `
rules:
  - id: r
    severity: low
    detect: {sequence: {maxspan: 1h, steps: [{signal: iam_user}, {signal: shell}]}}
` + lintSignals, nil},
		{"container_id never", `
rules:
  - id: r
    severity: low
    by: [container_id]
    detect: {match: {signal: exec}}
` + lintSignals, []string{
			`7:9: warning: rule r is keyed by [container_id], but all its signals are CloudTrail signals, and CloudTrail records carry account, region and principal, and never a container id: events of signal exec (ecs.amazonaws.com:ExecuteCommand) without it have no key and are dropped (counted in NoKey); key by [account, region] or [principal], or by {name, expr} over raw (e.g. the request's resource)`,
		}},
		{"signal type of another source", `
signals:
  - name: s
    source: cloudtrail
    types: ["Execution:Runtime/ReverseShell", "ExecuteCommand"]
    where: 'true'
rules:
  - id: r
    severity: low
    by: [account]
    detect: {match: {signal: s}}
`, []string{
			`7:13: warning: signal s: type "Execution:Runtime/ReverseShell" is a guardduty event type, never a cloudtrail one (cloudtrail event types are eventSource:eventName, e.g. ecs.amazonaws.com:ExecuteCommand): the signal can never match events of that type`,
			`7:47: warning: signal s: type "ExecuteCommand" is never a cloudtrail event type (they are eventSource:eventName, e.g. ecs.amazonaws.com:ExecuteCommand): the signal can never match events of that type`,
		}},
		{"contradictory where conjuncts", `
signals:
  - name: s
    source: cloudtrail
    where: 'raw.eventSource == "ecs.amazonaws.com" && raw.userIdentity.type == "Root" && raw.userIdentity.type in ["IAMUser", "AssumedRole"]'
  - name: t
    source: falco
    where: 'event.source == "guardduty" && raw.rule == "x"'
  - name: u
    source: cloudtrail
    where: 'event.type == "a:B" && event.type == "c:D"'
rules:
  - id: r
    severity: low
    by: [account]
    detect: {match: {any_of: [s, t, u]}}
`, []string{
			`7:112: warning: signal s: where can never match: it requires raw.userIdentity.type to be "Root" and one of ["IAMUser", "AssumedRole"] at once`,
			`10:26: warning: signal t: where can never match: it requires event.source "guardduty", but the signal's source is falco`,
			`13:12: warning: signal u: where can never match (contradictory event types)`,
		}},
		{"unknown signal field in threshold", `
rules:
  - id: r
    severity: low
    detect:
      threshold: {signal: shell, window: 5m, distinct: {field: 'fields.dst', gte: 2}}
` + lintSignals, []string{
			`8:72: error: threshold.distinct.field: unknown field fields.dst: signal shell extracts only dest; did you mean fields.dest?`,
		}},
		{"unknown field in by and any_of step", `
rules:
  - id: r
    severity: low
    by: [{name: who, expr: 'fields.principle'}]
    detect: {match: {any_of: [exec, iam_user], where: 'step.fields.usr != ""'}}
` + lintSignals, []string{
			`7:36: error: by.expr: unknown field fields.principle: no signal of rule r extracts it (they extract principal, cmd, user); did you mean fields.principal?`,
			`8:68: error: match.where: unknown field fields.usr: no signal of step match extracts it (they extract principal, cmd, user); did you mean fields.user?`,
		}},
		{"step aliases in sequence where", `
rules:
  - id: r
    severity: low
    detect:
      sequence:
        maxspan: 1h
        steps:
          - {as: exec, signal: exec, where: 'steps.exec.raw == nil'}
          - {as: shell, signal: shell, where: 'steps.exce.fields.cmd != "" && steps.exec.fields.cmdd != "" && steps.c2 == nil'}
          - {as: c2, signal: gd_shell, where: 'steps.shell.feilds == nil && steps.shell.entity.tsk == ""'}
` + lintSignals, []string{
			`11:52: error: steps[0].where: unknown step alias steps.exec: step exec is this step, and steps holds only earlier steps (read this step's event directly: raw, fields, entity, event)`,
			`12:54: error: steps[1].where: unknown step alias steps.exce: the earlier steps are exec; did you mean steps.exec?`,
			`12:97: error: steps[1].where: unknown field steps.exec.fields.cmdd: signal exec extracts only principal, cmd; did you mean steps.exec.fields.cmd?`,
			`12:117: error: steps[1].where: unknown step alias steps.c2: step c2 is not an earlier step here (the earlier steps are exec)`,
			`13:60: error: steps[2].where: unknown step field steps.shell.feilds (want one of: signal, source, type, id, time, severity, raw, fields, entity); did you mean steps.shell.fields?`,
			`13:96: error: steps[2].where: unknown entity field steps.shell.entity.tsk (want one of: account, region, cluster, service, task_arn, task_definition_arn, task_definition_family, container_id, principal)`,
		}},
		{"steps in a match where", `
rules:
  - id: r
    severity: low
    detect: {match: {as: m, signal: exec, where: 'steps.m == nil'}}
` + lintSignals, []string{
			`7:57: error: match.where: unknown step alias steps.m: step m is this step, and steps holds only earlier steps (read this step's event directly: raw, fields, entity, event)`,
		}},
		{"output references", `
rules:
  - id: r
    severity: low
    title: "{{ .steps.exec.fields.cmdd }} on {{ .event.fields.principal }} {{ .steps.exec.entity.tsk_arn }}"
    severity_override:
      - {when: 'steps.exec.fields.principa == "x"', severity: high}
    detect: {match: {as: exec, signal: exec}}
    resolve:
      signal: iam_user
      closes: 'incident.steps.exe.fields.cmd == "" || incident.steps.exec.fields.cmdx == "" || event.fields.usr == "" || incident.entity.taskarn == ""'
    exceptions:
      - {name: e, fields: ['fields.principl'], values: [["x"]], reason: test, expires: 2099-01-01}
    output:
      summary: |
        ran {{ .steps.exec.fields.cmd }}
        by {{ .steps.exec.fields.princpal }}
      fields:
        a: 'steps.exec.fieldz'
        b: 'event.fields.cmdd'
    dedup: {key: '{{ .steps.exec.fields.xx }}'}
` + lintSignals, []string{
			`7:35: error: title: unknown field .steps.exec.fields.cmdd: signal exec extracts only principal, cmd; did you mean .steps.exec.fields.cmd?`,
			`7:98: error: title: unknown entity field .steps.exec.entity.tsk_arn (want one of: account, region, cluster, service, task_arn, task_definition_arn, task_definition_family, container_id, principal); did you mean .steps.exec.entity.task_arn?`,
			`9:35: error: severity_override.when: unknown field steps.exec.fields.principa: signal exec extracts only principal, cmd; did you mean steps.exec.fields.principal?`,
			`13:31: error: resolve.closes: unknown step alias incident.steps.exe (want one of: exec); did you mean incident.steps.exec?`,
			`13:82: error: resolve.closes: unknown field incident.steps.exec.fields.cmdx: signal exec extracts only principal, cmd; did you mean incident.steps.exec.fields.cmd?`,
			`13:109: error: resolve.closes: unknown field event.fields.usr: signal iam_user extracts only user; did you mean event.fields.user?`,
			`13:138: error: resolve.closes: unknown entity field incident.entity.taskarn (want one of: account, region, cluster, service, task_arn, task_definition_arn, task_definition_family, container_id, principal); did you mean incident.entity.task_arn?`,
			`15:36: error: exception field: unknown field fields.principl: signal exec extracts only principal, cmd; did you mean fields.principal?`,
			`19:34: error: summary: unknown field .steps.exec.fields.princpal: signal exec extracts only principal, cmd; did you mean .steps.exec.fields.principal?`,
			`21:24: error: output.fields.a: unknown step field steps.exec.fieldz (want one of: signal, source, type, id, time, severity, raw, fields, entity); did you mean steps.exec.fields?`,
			`22:26: error: output.fields.b: unknown field event.fields.cmdd: signal exec extracts only principal, cmd; did you mean event.fields.cmd?`,
			`23:41: error: dedup.key: unknown field .steps.exec.fields.xx: signal exec extracts only principal, cmd`,
		}},
		{"did you mean for entity and event members", `
signals:
  - name: s
    source: cloudtrail
    where: 'raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "RunTask" && entity.task_ar != ""'
  - name: s2
    source: cloudtrail
    where: 'raw.eventSource == "ecs.amazonaws.com" && raw.eventName == "RunTask" && event.tyep != ""'
rules:
  - id: r
    severity: low
    detect: {match: {signal: exec}}
    output: {fields: {a: 'entity.acount', b: 'steps.mach.raw'}}
` + lintSignals + `
`, []string{
			`7:92: error: where: type rule.EntityEnv has no field task_ar; did you mean entity.task_arn?`,
			`10:91: error: where: type rule.EventEnv has no field tyep; did you mean event.type?`,
			`14:30: error: unknown signal "exec"`,
			`15:34: error: output.fields.a: unknown entity field "acount" (want one of: account, region, cluster, service, task_arn, task_definition_arn, task_definition_family, container_id, principal); did you mean entity.account?`,
			`17:1: error: duplicate key "signals" in rule file (first at line 4)`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := loadString(t, tc.body, LoadOptions{})
			var got []string
			for _, d := range diags {
				if d.Severity != SevNote {
					got = append(got, strings.TrimPrefix(d.String(), "t.yaml:"))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestLintSigma pins the Sigma lint: a required field CloudTrail records
// lack (top level, or a userIdentity member), contradictory literals; a
// field under not, or beside a null/exists: false/neq, is not required.
func TestLintSigma(t *testing.T) {
	const doc = `title: t
id: %s
logsource: {product: aws, service: cloudtrail}
detection:
%s
level: low
`
	cases := []struct {
		name, detection string
		want            []string
	}{
		{"unknown top-level field", `  sel:
    eventSource: iam.amazonaws.com
    status: success
  condition: sel`, []string{"s.yml:7:5: warning: sigma: rule r can never match: its detection requires field status, which CloudTrail records do not have (a CloudTrail record has no status: a failed call has errorCode (and errorMessage), a successful one has none, so select success with `errorCode: null`)"}},
		{"case typo with did you mean", `  sel:
    eventname: CreateUser
  condition: sel`, []string{
			`s.yml:6:5: warning: sigma: rule r can never match: its detection requires field eventname, which CloudTrail records do not have; did you mean eventName?`,
		}},
		{"userIdentity member", `  sel:
    userIdentity.typ: Root
  condition: sel`, []string{
			`s.yml:6:5: warning: sigma: rule r can never match: its detection requires field userIdentity.typ, and a CloudTrail userIdentity has no member typ; did you mean userIdentity.type?`,
		}},
		{"nested under an open object is not checked", `  sel:
    requestParameters.whatever: x
  condition: sel`, nil},
		{"optional or negated fields are not required", `  sel:
    eventName: CreateUser
  a:
    statuz: x
  b:
    resultz: null
  c:
    foo|exists: false
  d:
    bar|neq: x
  condition: sel and (a or not b) and not a and b and c and d`, nil},
		{"required on both sides of an or", `  a:
    eventName: A
    stat: x
  b:
    eventName: B
    stat: y
  condition: a or b`, []string{
			`s.yml:7:5: warning: sigma: rule r can never match: its detection requires field stat, which CloudTrail records do not have`,
		}},
		{"contradictory literals", `  a:
    eventName: A
  b:
    eventName: B
  condition: a and b`, []string{
			`s.yml:5:3: warning: sigma: rule r can never match: its condition requires eventName to equal contradictory values (a record has one value)`,
		}},
		{"contradictory |all", `  a:
    eventName|all: [ListBuckets, ConsoleLogin]
  condition: a`, []string{
			`s.yml:5:3: warning: sigma: rule r can never match: its condition requires eventName to equal contradictory values (a record has one value)`,
		}},
		{"|all of one value in two spellings", `  a:
    eventName|all: [ListBuckets, listbuckets]
  condition: a`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := fmt.Sprintf(doc, "r", tc.detection)
			_, diags := Load([]NamedSource{{Name: "s.yml", Data: []byte(data)}}, LoadOptions{Now: testNow})
			var got []string
			for _, d := range diags {
				if d.Severity != SevNote {
					got = append(got, d.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
