package deploy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// ctRecord is a CloudTrail record of a successful call by the deploying
// principal, in the layout of rules/builtin/fixtures.
func ctRecord(i int, source, name string, req, resp any) map[string]any {
	at := time.Date(2025, 6, 1, 12, 0, i, 0, time.UTC).Format(time.RFC3339)
	return map[string]any{
		"eventVersion": "1.10",
		"userIdentity": map[string]any{
			"type":        "AssumedRole",
			"principalId": "AROAEXAMPLEDEPLOY1:terraform",
			"arn":         "arn:aws:sts::" + testAccount + ":assumed-role/PlatformDeploy/terraform",
			"accountId":   testAccount,
		},
		"eventTime":          at,
		"eventSource":        source,
		"eventName":          name,
		"awsRegion":          testRegion,
		"sourceIPAddress":    "198.51.100.23",
		"userAgent":          "APN/1.0 HashiCorp/1.0 Terraform/1.9.8 terraform-provider-aws/6.0.0",
		"requestParameters":  req,
		"responseElements":   resp,
		"requestID":          fmt.Sprintf("d0c1a2b3-%04d-4000-8000-000000000000", i),
		"eventID":            fmt.Sprintf("e0c1a2b3-%04d-4000-8000-000000000000", i),
		"readOnly":           false,
		"eventType":          "AwsApiCall",
		"managementEvent":    true,
		"recipientAccountId": testAccount,
		"eventCategory":      "Management",
	}
}

// deployRecords are the CloudTrail records `terraform apply` of the module
// produces for what the drift rules look at: RegisterTaskDefinition of the
// task definition, PutRolePolicy of each inline policy,
// AuthorizeSecurityGroupIngress of each ingress rule, and the documented
// account setting for Container Insights. mutate may change the task
// definition and the policies first.
func deployRecords(t *testing.T, e *evaluator, mutate func(td map[string]any, policies map[string]map[string]any)) []any {
	t.Helper()
	td := taskDefinition(t, e)
	policies := rolePolicies(t, e)
	if mutate != nil {
		mutate(td, policies)
	}
	var recs []any
	i := 0
	next := func() int { i++; return i }

	resp := map[string]any{}
	for k, v := range td {
		resp[k] = v
	}
	resp["taskDefinitionArn"] = fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:1", testRegion, testAccount, td["family"])
	resp["revision"] = 1
	resp["status"] = "ACTIVE"
	recs = append(recs, ctRecord(next(), "ecs.amazonaws.com", "RegisterTaskDefinition", td, map[string]any{"taskDefinition": resp}))

	roles := make([]string, 0, len(policies))
	for r := range policies {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, role := range roles {
		for name, doc := range policies[role] {
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, ctRecord(next(), "iam.amazonaws.com", "PutRolePolicy",
				map[string]any{"roleName": role, "policyName": name, "policyDocument": string(b)}, nil))
		}
	}

	keys := make([]string, 0)
	for k, b := range e.m.resources {
		if b.Labels[0] == "aws_vpc_security_group_ingress_rule" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		t.Fatal("no ingress rules found")
	}
	for _, k := range keys {
		b := e.m.resources[k]
		get := func(n string) any {
			if a := attr(t, b, n); a != nil {
				return toGo(t, e.value(t, a.Expr))
			}
			return nil
		}
		perm := map[string]any{"ipProtocol": get("ip_protocol"), "fromPort": get("from_port"), "toPort": get("to_port")}
		if c := get("cidr_ipv4"); c != nil {
			perm["ipRanges"] = map[string]any{"items": []any{map[string]any{"cidrIp": c}}}
		}
		if c := get("cidr_ipv6"); c != nil {
			perm["ipv6Ranges"] = map[string]any{"items": []any{map[string]any{"cidrIpv6": c}}}
		}
		if g := get("referenced_security_group_id"); g != nil {
			perm["groups"] = map[string]any{"items": []any{map[string]any{"groupId": g}}}
		}
		recs = append(recs, ctRecord(next(), "ec2.amazonaws.com", "AuthorizeSecurityGroupIngress",
			map[string]any{"groupId": get("security_group_id"), "ipPermissions": map[string]any{"items": []any{perm}}},
			map[string]any{"_return": true}))
	}

	recs = append(recs, ctRecord(next(), "ecs.amazonaws.com", "PutAccountSetting",
		map[string]any{"name": "containerInsights", "value": "enabled"},
		map[string]any{"setting": map[string]any{"name": "containerInsights", "value": "enabled"}}))
	return recs
}

// replay writes the records as a CloudTrail S3 object and replays them
// through the real binary with the built-in rules; it returns the rule ids
// of the incidents.
func replay(t *testing.T, recs []any) []string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "AWSLogs", testAccount, "CloudTrail", testRegion, "2025", "06", "01")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, testAccount+"_CloudTrail_"+testRegion+"_20250601T1200Z_deploy.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "incidents.jsonl")
	cmd := exec.Command(binary(t), "replay", "--format", "jsonl", "--out", out, file)
	stderr, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ecscorr replay: %v\n%s", err, stderr)
	}
	if !strings.Contains(string(stderr), fmt.Sprint(len(recs))) {
		t.Logf("replay summary:\n%s", stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var inc struct {
			Rule string `json:"rule"`
		}
		if err := json.Unmarshal(sc.Bytes(), &inc); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inc.Rule)
	}
	sort.Strings(ids)
	return ids
}

// TestDeployRaisesNoDrift replays what applying the module records in
// CloudTrail through ecscorr's own rules: nothing may fire. A privileged
// task definition and an admin inline policy, made the same way, do fire,
// so the check is not vacuous.
func TestDeployRaisesNoDrift(t *testing.T) {
	e := exampleModule(t)
	recs := deployRecords(t, e, nil)
	if len(recs) < 5 {
		t.Fatalf("%d records", len(recs))
	}
	if ids := replay(t, recs); len(ids) != 0 {
		t.Fatalf("deploying the module raises incidents: %v", ids)
	}

	bad := deployRecords(t, e, func(td map[string]any, policies map[string]map[string]any) {
		c := td["containerDefinitions"].([]any)[0].(map[string]any)
		c["privileged"] = true
		doc := policies["ecscorr-task"]["ecscorr"].(map[string]any)
		doc["Statement"] = append(doc["Statement"].([]any), map[string]any{"Effect": "Allow", "Action": "*", "Resource": "*"})
	})
	ids := replay(t, bad)
	want := []string{"ecs-drift-risky-task-definition", "ecs-drift-role-admin-policy"}
	if !slices.Equal(ids, want) {
		t.Fatalf("bad variant raised %v, want %v", ids, want)
	}

	// And a world-open ingress rule made by the module's own record
	// builder fires too.
	open := deployRecords(t, e, nil)
	for _, r := range open {
		m := r.(map[string]any)
		if m["eventName"] == "AuthorizeSecurityGroupIngress" {
			perm := m["requestParameters"].(map[string]any)["ipPermissions"].(map[string]any)["items"].([]any)[0].(map[string]any)
			delete(perm, "groups")
			perm["ipRanges"] = map[string]any{"items": []any{map[string]any{"cidrIp": "0.0.0.0/0"}}}
			break
		}
	}
	if ids := replay(t, open); !slices.Equal(ids, []string{"ecs-drift-security-group-open-to-world"}) {
		t.Fatalf("world-open variant raised %v", ids)
	}
}
