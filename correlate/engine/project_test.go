package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
)

func TestSignalProjectionKeys(t *testing.T) {
	tests := []struct {
		where string
		keys  string // comma-joined, or "full"
	}{
		{`raw.eventSource == "ecs.amazonaws.com" && raw.requestParameters.interactive == true && raw.errorCode == nil`, "errorCode,eventSource,requestParameters"},
		{`raw?.Type == "Task" && raw.CpuReserved > 0`, "CpuReserved,Type"},
		{`raw["eventName"] == "x"`, "eventName"},
		{`len(raw) > 0`, "full"},
		{`any(keys(raw), # == "x")`, "full"},
		{`event.type == "x"`, ""},
	}
	for _, tc := range tests {
		prog, err := expr.Compile(tc.where, expr.Env(rule.Env{}), expr.AsBool())
		if err != nil {
			t.Fatalf("%s: %v", tc.where, err)
		}
		p := signalProjection(&rule.Signal{Where: prog})
		got := strings.Join(p.keys, ",")
		if p.full {
			got = "full"
		}
		if got != tc.keys {
			t.Errorf("%s: keys %q, want %q", tc.where, got, tc.keys)
		}
	}
}

func BenchmarkProjectVsFullDecode(b *testing.B) {
	rec := []byte(`{"Version":"0","Type":"Task","TaskId":"7ac4dfba69214411b4783a3b8189c9ba","TaskDefinitionFamily":"sleep360","TaskDefinitionRevision":"1","ContainerInstanceId":"0d7650e6dec34c1a9200f72098071e8f","EC2InstanceId":"i-0c470579dbcdbd2f3","ClusterName":"MyCluster","AccountID":"637146863587","Region":"us-west-2","AvailabilityZone":"us-west-2b","KnownStatus":"RUNNING","LaunchType":"EC2","PullStartedAt":1623963608201,"PullStoppedAt":1623963610065,"CreatedAt":1623963607094,"StartedAt":1623963610382,"Timestamp":1623963900000,"CpuUtilized":0.0,"CpuReserved":10.0,"MemoryUtilized":0,"MemoryReserved":10,"StorageReadBytes":0,"StorageWriteBytes":0,"NetworkRxBytes":0,"NetworkRxDropped":0,"NetworkRxErrors":0,"NetworkRxPackets":14,"NetworkTxBytes":0,"NetworkTxDropped":0,"NetworkTxErrors":0,"NetworkTxPackets":0,"CloudWatchMetrics":[{"Namespace":"ECS/ContainerInsights","Metrics":[{"Name":"CpuUtilized","Unit":"None"},{"Name":"CpuReserved","Unit":"None"},{"Name":"MemoryUtilized","Unit":"Megabytes"},{"Name":"MemoryReserved","Unit":"Megabytes"}],"Dimensions":[["ClusterName"],["ClusterName","TaskDefinitionFamily"]]}]}`)
	proj := pipeline.NewPathProjection([][]string{{"CpuReserved"}, {"CpuUtilized"}, {"Type"}})
	b.Run("project", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := proj.Project(rec); !ok {
				b.Fatal("project failed")
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if decodeRaw(rec) == nil {
				b.Fatal("decode failed")
			}
		}
	})
}

func TestRuleProjectionKeys(t *testing.T) {
	compile := func(src string) *vm.Program {
		p, err := expr.Compile(src, expr.Env(rule.Env{}))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	r := &rule.Rule{
		By:        []rule.KeyField{{Name: "user", Expr: compile(`raw.userIdentity.arn`)}, {Name: "task_arn", Entity: "task_arn"}},
		Threshold: &rule.Threshold{Step: rule.Step{Where: compile(`raw.sourceIPAddress != ""`)}, Field: compile(`raw.requestParameters.bucketName`)},
	}
	if p := ruleProjection(r); p.full || strings.Join(p.keys, ",") != "requestParameters,sourceIPAddress,userIdentity" {
		t.Fatalf("ruleProjection = %+v", p)
	}
	r.By = append(r.By, rule.KeyField{Name: "all", Expr: compile(`string(raw)`)})
	if p := ruleProjection(r); !p.full {
		t.Fatalf("a by expression using raw as a whole must force a full decode: %+v", p)
	}
}

// A rule whose `by` reads raw is keyed right when the signal it is fed by
// reads no raw but another candidate signal of the event does: the event's
// projection then holds both what the signal reads and what the rule does.
func TestByReadsRawBesideAnotherSignalsProjection(t *testing.T) {
	src := `apiVersion: ecscorr/v1
kind: RuleFile
signals:
  - name: plain_stop
    source: cloudtrail
    where: event.type == "ecs.amazonaws.com:StopTask"
  - name: raw_stop
    source: cloudtrail
    where: event.type == "ecs.amazonaws.com:StopTask" && raw.errorCode == nil
rules:
  - id: by-cluster
    title: stop in {{ .key.cluster }}
    severity: low
    by:
      - {name: cluster, expr: 'string(raw.requestParameters?.cluster ?? "none")'}
    detect:
      match: {as: m, signal: plain_stop}
  - id: other
    title: other
    severity: low
    by: [account]
    detect:
      match: {as: m, signal: raw_stop}
`
	path := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	set, diags := rule.LoadFiles([]string{path}, rule.LoadOptions{Now: t0})
	if diags.HasErrors() {
		t.Fatal(diags.Errors())
	}
	for _, prepare := range []bool{false, true} {
		e, err := New(context.Background(), set, nil, Options{Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		ev := ctEvent("e1", t0, "eu-west-1", `{"eventSource":"ecs.amazonaws.com","eventName":"StopTask","requestParameters":{"cluster":"prod"}}`)
		if prepare {
			e.Prepare(ev)
		}
		incs, err := e.Process(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		got := ofRule(incs, "by-cluster")
		if len(got) != 1 || got[0].Key["cluster"] != "prod" || got[0].Title != "stop in prod" {
			t.Fatalf("prepared %v: by-cluster incidents %+v, want one keyed cluster=prod", prepare, got)
		}
		if len(ofRule(incs, "other")) != 1 {
			t.Fatalf("prepared %v: want one incident of rule other, got %+v", prepare, incs)
		}
	}
}
