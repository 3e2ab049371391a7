// Package deploy_test checks deploy/: every Terraform file parses, every
// JSON and YAML file parses, the example config passes `ecscorr config
// check`, the generated files are current, no IAM statement grants "*"
// where the service allows less, and the task definition and IAM policies,
// as the CloudTrail records that would create them, raise no incident in
// ecscorr's own drift rules (while a privileged / admin variant does).
//
// `terraform validate` and `terraform fmt -check -recursive` are not run
// here (no terraform binary on the build machine); CI runs them where one
// can be installed.
//
// go test ./deploy -update rewrites terraform/cloudtrail_events.tf.json and
// terraform/examples/basic/ecscorr.yaml.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"go.yaml.in/yaml/v3"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/rules"
)

var update = flag.Bool("update", false, "rewrite the generated files")

const (
	moduleDir  = "terraform"
	exampleDir = "terraform/examples/basic"
	eventsFile = "terraform/cloudtrail_events.tf.json"
	configFile = "terraform/examples/basic/ecscorr.yaml"
)

// TestFilesParse parses every .tf (and .tf.json) file under deploy/ with
// hcl/v2, and every .json and .yaml file.
func TestFilesParse(t *testing.T) {
	p := hclparse.NewParser()
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var diags hcl.Diagnostics
		switch {
		case strings.HasSuffix(path, ".tf"), strings.HasSuffix(path, ".tfvars"):
			_, diags = p.ParseHCL(data, path)
		case strings.HasSuffix(path, ".tf.json"):
			_, diags = p.ParseJSON(data, path)
		case strings.HasSuffix(path, ".json"):
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		case strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".yml"):
			dec := yaml.NewDecoder(bytes.NewReader(data))
			for {
				var v any
				if err := dec.Decode(&v); err != nil {
					if err.Error() != "EOF" {
						t.Errorf("%s: %v", path, err)
					}
					break
				}
			}
		default:
			return nil
		}
		if diags.HasErrors() {
			t.Error(diagString(p, diags))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("only %d files checked", n)
	}
	// And as modules: block structure, duplicate locals.
	parseModule(t, moduleDir)
	parseModule(t, exampleDir)
}

// builtinCloudTrailEvents lists the (eventSource, eventName) pairs the
// built-in pack's CloudTrail signals can match: each signal's Types, which
// the loader derives from `raw.eventSource == / in` and `raw.eventName ==
// / in` conjuncts (format registry TypeFields eventSource:eventName) and
// which signal dispatch relies on. A CloudTrail signal without Types could
// match any call: the EventBridge rules could not be restricted, so that
// fails.
func builtinCloudTrailEvents(t *testing.T) map[string][]string {
	t.Helper()
	set, diags := rule.LoadFS(rules.Builtin, rule.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := map[string][]string{}
	for _, sig := range set.Signals {
		if sig.Source != pipeline.SourceCloudTrail && sig.Source != "" {
			continue
		}
		if len(sig.Types) == 0 {
			t.Fatalf("signal %s (%s) matches any CloudTrail call: give it `types:` or raw.eventSource/raw.eventName conditions so the EventBridge rules can be restricted", sig.Name, sig.Pos)
		}
		for _, typ := range sig.Types {
			src, name, ok := strings.Cut(typ, ":")
			if !ok {
				if sig.Source == "" {
					continue // another source's type
				}
				t.Fatalf("signal %s: CloudTrail type %q is not eventSource:eventName", sig.Name, typ)
			}
			if !slices.Contains(out[src], name) {
				out[src] = append(out[src], name)
			}
		}
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out
}

func TestCloudTrailEventsCurrent(t *testing.T) {
	events := builtinCloudTrailEvents(t)
	if len(events["ecs.amazonaws.com"]) == 0 || len(events["iam.amazonaws.com"]) == 0 {
		t.Fatalf("unexpectedly few events: %v", events)
	}
	doc := map[string]any{
		"//":     "Generated from the built-in rule pack by go test ./deploy -update (deploy_test.go builtinCloudTrailEvents); do not edit.",
		"locals": map[string]any{"builtin_cloudtrail_events": events},
	}
	want, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	checkGenerated(t, eventsFile, want)
}

// checkGenerated compares a generated file with its committed copy (or
// rewrites it with -update).
func checkGenerated(t *testing.T, path string, want []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go test ./deploy -update\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// exampleModule evaluates the module with the inputs examples/basic gives
// it for example.tfvars.
func exampleModule(t *testing.T) *evaluator {
	t.Helper()
	ex := parseModule(t, exampleDir)
	p := hclparse.NewParser()
	f, diags := p.ParseHCLFile(filepath.Join(exampleDir, "example.tfvars"))
	if diags.HasErrors() {
		t.Fatal(diagString(p, diags))
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diagString(p, diags))
	}
	tfvars := map[string]cty.Value{}
	for n, a := range attrs {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatal(diagString(p, diags))
		}
		tfvars[n] = v
	}
	exEval := newEvaluator(t, ex, ex.inputs(t, tfvars))
	mb := ex.modules["ecscorr"]
	if mb == nil {
		t.Fatal("examples/basic has no module \"ecscorr\"")
	}
	margs, diags := mb.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	given := map[string]cty.Value{}
	for n, a := range margs {
		if n == "source" {
			continue
		}
		given[n] = exEval.value(t, a.Expr)
	}
	m := parseModule(t, moduleDir)
	return newEvaluator(t, m, m.inputs(t, given))
}

// TestValidationsAcceptExample evaluates every variable validation with
// the example's inputs (they must hold) and with a few bad inputs (they
// must not).
func TestValidationsAcceptExample(t *testing.T) {
	e := exampleModule(t)
	check := func(e *evaluator) (failed []string) {
		for name, b := range e.m.variables {
			c, _, _ := b.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}}})
			for _, vb := range c.Blocks {
				cond := attr(t, vb, "condition")
				v := e.value(t, cond.Expr)
				if !v.True() {
					failed = append(failed, name)
				}
			}
		}
		sort.Strings(failed)
		return failed
	}
	if f := check(e); len(f) > 0 {
		t.Fatalf("validations of %v fail for the example", f)
	}
	bad := map[string]cty.Value{
		"image":              cty.StringVal("ecscorr:latest"),
		"container_insights": cty.StringVal("disabled"),
		"name":               cty.StringVal("Bad_Name"),
		"cloudtrail_prefix":  cty.StringVal("AWSLogs/*"),
	}
	for n, v := range bad {
		vars := maps(e.vars)
		vars[n] = v
		if f := check(newEvaluator(t, e.m, vars)); !slices.Equal(f, []string{n}) {
			t.Errorf("%s = %#v: failing validations %v, want [%s]", n, v.GoString(), f, n)
		}
	}
}

func maps(m map[string]cty.Value) map[string]cty.Value {
	out := make(map[string]cty.Value, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestExampleConfigCurrent renders templates/ecscorr.yaml.tftpl as the
// module does for the example and compares it with the committed copy.
func TestExampleConfigCurrent(t *testing.T) {
	e := exampleModule(t)
	cfg := e.local(t, "config_yaml").AsString()
	checkGenerated(t, configFile, []byte(cfg))
}

var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ecscorr-deploy-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ecscorr")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/ecscorr").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if bin, err := buildBinary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestConfigCheck runs the real `ecscorr config check` on the example
// config, with the environment the task gives it.
func TestConfigCheck(t *testing.T) {
	cmd := exec.Command(binary(t), "config", "check", configFile)
	cmd.Env = append(os.Environ(), "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/XXXX")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ecscorr config check %s: %v\n%s", configFile, err, out)
	}
	// And it can fail: a key ecscorr does not know.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	data, _ := os.ReadFile(configFile)
	os.WriteFile(bad, append(data, []byte("no_such_key: 1\n")...), 0o644)
	if out, err := exec.Command(binary(t), "config", "check", bad).CombinedOutput(); err == nil {
		t.Fatalf("config check accepted an unknown key:\n%s", out)
	}
}

// toGo turns a cty value into encoding/json's Go form.
func toGo(t *testing.T, v cty.Value) any {
	t.Helper()
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonString(t *testing.T, e *evaluator, res, name string) any {
	t.Helper()
	b := e.m.resources[res]
	if b == nil {
		t.Fatalf("no resource %s", res)
	}
	a := attr(t, b, name)
	if a == nil {
		t.Fatalf("%s has no %s", res, name)
	}
	var out any
	if err := json.Unmarshal([]byte(e.value(t, a.Expr).AsString()), &out); err != nil {
		t.Fatalf("%s.%s: %v", res, name, err)
	}
	return out
}

// taskDefinition is what RegisterTaskDefinition receives for the module's
// task definition (the CLI/API field names).
func taskDefinition(t *testing.T, e *evaluator) map[string]any {
	t.Helper()
	const res = "aws_ecs_task_definition.this"
	b := e.m.resources[res]
	str := func(name string) any {
		a := attr(t, b, name)
		if a == nil {
			return nil
		}
		return toGo(t, e.value(t, a.Expr))
	}
	td := map[string]any{
		"family":                  str("family"),
		"taskRoleArn":             str("task_role_arn"),
		"executionRoleArn":        str("execution_role_arn"),
		"networkMode":             str("network_mode"),
		"containerDefinitions":    jsonString(t, e, res, "container_definitions"),
		"requiresCompatibilities": str("requires_compatibilities"),
		"cpu":                     fmt.Sprint(str("cpu")),
		"memory":                  fmt.Sprint(str("memory")),
	}
	for _, k := range []string{"pid_mode", "ipc_mode"} {
		if v := str(k); v != nil {
			td[map[string]string{"pid_mode": "pidMode", "ipc_mode": "ipcMode"}[k]] = v
		}
	}
	return td
}

// rolePolicies are the module's inline role policies: role resource name
// → policy name → document.
func rolePolicies(t *testing.T, e *evaluator) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for key, b := range e.m.resources {
		if b.Labels[0] != "aws_iam_role_policy" {
			continue
		}
		role := attr(t, b, "role").Expr.Variables()[0]
		roleName := fmt.Sprintf("%s-%s", e.vars["name"].AsString(), role[1].(hcl.TraverseAttr).Name)
		name := e.value(t, attr(t, b, "name").Expr).AsString()
		if out[roleName] == nil {
			out[roleName] = map[string]any{}
		}
		out[roleName][name] = jsonString(t, e, key, "policy")
	}
	if len(out) < 2 {
		t.Fatalf("found policies of %d roles, want the task and execution roles", len(out))
	}
	return out
}

// TestTaskDefinitionHardening checks the container definition's settings
// the issue asks for, one by one.
func TestTaskDefinitionHardening(t *testing.T) {
	e := exampleModule(t)
	td := taskDefinition(t, e)
	if td["networkMode"] != "awsvpc" {
		t.Errorf("networkMode %v, want awsvpc", td["networkMode"])
	}
	if _, ok := td["pidMode"]; ok {
		t.Errorf("pidMode set: %v", td["pidMode"])
	}
	cds := td["containerDefinitions"].([]any)
	if len(cds) != 1 {
		t.Fatalf("%d containers, want 1", len(cds))
	}
	c := cds[0].(map[string]any)
	if u, _ := c["user"].(string); u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("user %q: want a non-root uid", u)
	}
	for k, want := range map[string]any{"readonlyRootFilesystem": true, "privileged": false, "stopTimeout": 30.0} {
		if c[k] != want {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	for _, env := range c["environment"].([]any) {
		n := env.(map[string]any)["name"].(string)
		if strings.Contains(strings.ToUpper(n), "SLACK") || strings.Contains(strings.ToUpper(n), "TOKEN") {
			t.Errorf("environment carries %s: secrets go in `secrets`", n)
		}
	}
	var secrets []string
	for _, s := range c["secrets"].([]any) {
		secrets = append(secrets, s.(map[string]any)["name"].(string))
	}
	if !slices.Contains(secrets, "SLACK_WEBHOOK_URL") || !slices.Contains(secrets, "ECSCORR_CONFIG_YAML") {
		t.Errorf("secrets %v: want SLACK_WEBHOOK_URL and ECSCORR_CONFIG_YAML", secrets)
	}
	hc, _ := c["healthCheck"].(map[string]any)
	if cmd := fmt.Sprint(hc["command"]); !strings.Contains(cmd, "/healthz") {
		t.Errorf("healthCheck %v: want a check of /healthz", hc)
	}
	if lc, _ := c["logConfiguration"].(map[string]any); lc["logDriver"] != "awslogs" {
		t.Errorf("logConfiguration %v: want awslogs", lc)
	}
	if _, ok := c["linuxParameters"]; ok {
		t.Errorf("linuxParameters set: nothing may add capabilities or block the GuardDuty agent")
	}
}

// starAllowed are the actions that support no resource-level permissions:
// the Service Authorization Reference lists no resource type for them, so
// "*" is the only Resource that works.
var starAllowed = map[string]string{
	// "Actions, resources, and condition keys for Amazon CloudWatch Logs":
	// no resource type; the call is authorised on
	// arn:aws:logs:REGION:ACCOUNT:log-group::log-stream:, never on a named
	// group (hashicorp/terraform-provider-aws#8804, maxbanton/cwh#83).
	"logs:DescribeLogGroups": "no resource-level permissions",
	// "Actions, resources, and condition keys for Amazon ECR": the
	// registry token is not a resource.
	"ecr:GetAuthorizationToken": "no resource-level permissions",
}

func statements(doc any) []map[string]any {
	st := doc.(map[string]any)["Statement"]
	var out []map[string]any
	switch s := st.(type) {
	case []any:
		for _, x := range s {
			out = append(out, x.(map[string]any))
		}
	case map[string]any:
		out = append(out, s)
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

// starProblems lists the statements of doc that use "*" in an action, or
// "*" as a resource for an action that has resource-level permissions.
func starProblems(doc any) []string {
	var out []string
	for _, st := range statements(doc) {
		acts := strs(st["Action"])
		if st["NotAction"] != nil {
			out = append(out, fmt.Sprintf("%v: NotAction", st["Sid"]))
		}
		for _, a := range acts {
			if strings.Contains(a, "*") {
				out = append(out, fmt.Sprintf("%v: action %q", st["Sid"], a))
			}
		}
		if st["Effect"] != "Allow" {
			continue
		}
		for _, r := range strs(st["Resource"]) {
			if r != "*" {
				continue
			}
			for _, a := range acts {
				if _, ok := starAllowed[a]; !ok {
					out = append(out, fmt.Sprintf("%v: resource \"*\" for %s", st["Sid"], a))
				}
			}
		}
		if st["NotResource"] != nil {
			out = append(out, fmt.Sprintf("%v: NotResource", st["Sid"]))
		}
	}
	return out
}

// TestNoStarPermissions checks every policy the module writes: the role
// policies, the queue and file system resource policies, and the
// assume-role documents.
func TestNoStarPermissions(t *testing.T) {
	e := exampleModule(t)
	docs := map[string]any{}
	for role, ps := range rolePolicies(t, e) {
		for name, doc := range ps {
			docs[role+"/"+name] = doc
		}
	}
	for key, b := range e.m.resources {
		if a := attr(t, b, "policy"); a != nil && b.Labels[0] != "aws_iam_role_policy" {
			docs[key] = jsonString(t, e, key, "policy")
		}
	}
	if len(docs) < 5 {
		t.Fatalf("only %d policies found", len(docs))
	}
	for name, doc := range docs {
		for _, p := range starProblems(doc) {
			t.Errorf("%s: %s", name, p)
		}
	}
	// The check can fail.
	bad := map[string]any{"Statement": []any{
		map[string]any{"Sid": "a", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
		map[string]any{"Sid": "b", "Effect": "Allow", "Action": []any{"sqs:ReceiveMessage"}, "Resource": "*"},
	}}
	if p := starProblems(bad); len(p) != 2 {
		t.Fatalf("bad policy: problems %v, want 2", p)
	}
}

// TestMinimalInputs evaluates the policies, the container and the config
// with only the required variables (every optional one at its default,
// mostly null): a conditional that breaks without the options fails here.
func TestMinimalInputs(t *testing.T) {
	m := parseModule(t, moduleDir)
	e := newEvaluator(t, m, m.inputs(t, map[string]cty.Value{
		"image":      cty.StringVal("public.ecr.aws/example/ecscorr@sha256:" + strings.Repeat("0", 64)),
		"vpc_id":     cty.StringVal("vpc-0a1b2c3d4e5f60718"),
		"subnet_ids": cty.TupleVal([]cty.Value{cty.StringVal("subnet-0a1b2c3d4e5f60718")}),
	}))
	for name, ps := range rolePolicies(t, e) {
		for pn, doc := range ps {
			for _, p := range starProblems(doc) {
				t.Errorf("%s/%s: %s", name, pn, p)
			}
		}
	}
	c := taskDefinition(t, e)["containerDefinitions"].([]any)[0].(map[string]any)
	if n := len(c["secrets"].([]any)); n != 1 {
		t.Errorf("%d secrets without Slack, want 1 (the config)", n)
	}
	cfg := e.local(t, "config_yaml").AsString()
	if strings.Contains(cfg, "slack") || strings.Contains(cfg, "cloudwatch_logs") {
		t.Errorf("minimal config has optional sinks or sources:\n%s", cfg)
	}
	path := filepath.Join(t.TempDir(), "minimal.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	if out, err := exec.Command(binary(t), "config", "check", path).CombinedOutput(); err != nil {
		t.Fatalf("config check of the minimal config: %v\n%s", err, out)
	}
}
