package format

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// TestSetTime checks the time fields written per format against what
// the decoder reads back.
func TestSetTime(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 34, 56, 0, time.UTC)
	for _, tc := range []struct {
		name string
		rec  string
		src  pipeline.Source
	}{
		{"cloudtrail", `{"eventVersion":"1.08","eventTime":"2020-01-01T00:00:00Z","eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","eventID":"x","awsRegion":"us-east-1","userIdentity":{"type":"IAMUser"}}`, pipeline.SourceCloudTrail},
		{"cloudtrail without eventTime", `{"eventVersion":"1.08","eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","eventID":"x","awsRegion":"us-east-1"}`, pipeline.SourceCloudTrail},
		{"falco", `{"output":"x","priority":"Warning","rule":"Terminal shell in container","time":"2020-01-01T00:00:00.000000000Z","output_fields":{"container.id":"abcdefabcdef","evt.time":1577836800000000000}}`, pipeline.SourceFalco},
		{"guardduty", `{"schemaVersion":"2.0","accountId":"111122223333","region":"eu-west-1","id":"f1","type":"Execution:Runtime/ReverseShell","severity":8,"createdAt":"2020-01-01T00:00:00.000Z","updatedAt":"2020-01-01T00:00:00.000Z","resource":{"resourceType":"ECSCluster","ecsClusterDetails":{"name":"prod","taskDetails":{"arn":"arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaa1111bbbb2222cccc3333dddd4444"}}},"service":{"eventFirstSeen":"2020-01-01T00:00:00.000Z","eventLastSeen":"2020-01-01T00:00:00.000Z","additionalInfo":{"sample":false}}}`, pipeline.SourceGuardDuty},
		{"eventbridge ecs task state change", `{"version":"0","id":"e1","detail-type":"ECS Task State Change","source":"aws.ecs","account":"111122223333","time":"2020-01-01T00:00:00Z","region":"eu-west-1","resources":["arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaa1111bbbb2222cccc3333dddd4444"],"detail":{"taskArn":"arn:aws:ecs:eu-west-1:111122223333:task/prod/aaaa1111bbbb2222cccc3333dddd4444","clusterArn":"arn:aws:ecs:eu-west-1:111122223333:cluster/prod","lastStatus":"RUNNING","updatedAt":"2020-01-01T00:00:00.000Z","containers":[{"name":"app","runtimeId":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}}`, pipeline.SourceECS},
		{"container insights", `{"Version":"0","Type":"Task","TaskId":"aaaa1111bbbb2222cccc3333dddd4444","ClusterName":"prod","AccountID":"111122223333","Region":"eu-west-1","Timestamp":1577836800000,"CpuUtilized":1,"CpuReserved":1024}`, pipeline.SourceContainerInsights},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(tc.rec))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			if err := SetTime(m, at); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(m)
			var evs []*pipeline.Event
			if err := Decode(raw, pipeline.Position{}, func(e *pipeline.Event) error { evs = append(evs, e); return nil },
				func(e RecordError) { t.Errorf("decode: %v", e) }); err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !evs[0].Time.Equal(at) || evs[0].Source != tc.src {
				t.Fatalf("decoded %d events; first %+v; want 1 %s event at %s", len(evs), evs, tc.src, at)
			}
		})
	}
	if err := SetTime(map[string]any{"messageType": "DATA_MESSAGE", "logEvents": []any{}}, at); err == nil || err.Error() != "cannot set the time of a CloudWatch Logs subscription payload; its records keep their own times" {
		t.Errorf("CloudWatch Logs envelope: err = %v", err)
	}
	if err := SetTime(map[string]any{"hello": "world"}, at); err == nil || !strings.Contains(err.Error(), "unrecognised record format") {
		t.Errorf("unknown record: err = %v", err)
	}
}

// Repeated records get distinct IDs, an envelope's detail too.
func TestSuffixID(t *testing.T) {
	m := map[string]any{"detail-type": "AWS API Call via CloudTrail", "id": "e1", "detail": map[string]any{"eventSource": "ecs.amazonaws.com", "eventName": "RunTask", "eventID": "c1"}}
	SuffixID(m, "-r1")
	if m["id"] != "e1-r1" || m["detail"].(map[string]any)["eventID"] != "c1-r1" {
		t.Fatalf("got %v", m)
	}
}

// Every record format that produces events names its source, and every
// source has exactly one record format.
func TestRegistryCoversEverySource(t *testing.T) {
	if got := Sources(); len(got) != len(pipeline.Sources) {
		t.Fatalf("sources with a format: %v, want %v", got, pipeline.Sources)
	}
	for _, src := range pipeline.Sources {
		n := 0
		for _, f := range formats() {
			if f.Source == src {
				n++
			}
		}
		if f, ok := ForSource(src); !ok || f.Source != src || (n != 1 && src != pipeline.SourceECS) {
			t.Errorf("%s: %d formats, ForSource %+v %v", src, n, f, ok)
		}
	}
}
