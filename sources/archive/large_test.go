package archive

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ecscorr/ecscorr/pipeline"
)

// ciTask is a Container Insights Task performance event of about 1 KB.
func ciTask(i int, withRegion bool) string {
	region := `"AccountID":"111122223333","Region":"eu-west-1",`
	if !withRegion {
		region = ""
	}
	return fmt.Sprintf(`{"Version":"0","Type":"Task","TaskId":"%032x","TaskDefinitionFamily":"payments-api","TaskDefinitionRevision":"42","ServiceName":"payments-api","ClusterName":"payments",%s"AvailabilityZone":"eu-west-1a","KnownStatus":"RUNNING","LaunchType":"FARGATE","PullStartedAt":1772445960000,"PullStoppedAt":1772445970000,"CreatedAt":1772445950000,"StartedAt":1772445980000,"Timestamp":%d,"CpuUtilized":505.0,"CpuReserved":512.0,"MemoryUtilized":301,"MemoryReserved":1024,"StorageReadBytes":0,"StorageWriteBytes":4096,"NetworkRxBytes":1234,"NetworkRxDropped":0,"NetworkRxErrors":0,"NetworkRxPackets":20,"NetworkTxBytes":98765,"NetworkTxDropped":0,"NetworkTxErrors":0,"NetworkTxPackets":80,"EphemeralStorageUtilized":1.2,"EphemeralStorageReserved":21.0,"CloudWatchMetrics":[{"Namespace":"ECS/ContainerInsights","Metrics":[{"Name":"CpuUtilized","Unit":"None"},{"Name":"CpuReserved","Unit":"None"}],"Dimensions":[["ClusterName"],["ClusterName","TaskDefinitionFamily"]]}]}`,
		i, region, 1772446620000+int64(i)*1000)
}

func logEventJSON(i int, msg string) string {
	return fmt.Sprintf(`{"logStreamName":"FargateTelemetry-%d","timestamp":%d,"message":%s,"ingestionTime":1772446621000,"eventId":"%056d"}`,
		i%7, 1772446620000+int64(i)*1000, strconv.Quote(msg), i)
}

// A container object larger than the record limit is streamed, whatever
// the order of its members: the limit applies to each record. Before,
// the whole object was dropped as one too-large record.
func TestLargeContainers(t *testing.T) {
	// The case from the issue: 21 MB of `aws logs filter-log-events`
	// output, 18,037 events, with the default 16 MiB limit. The first
	// events lack account and region; the batch's Task events give them.
	t.Run("filter-log-events 21 MB", func(t *testing.T) {
		if raceEnabled {
			t.Skip("too slow with the race detector; the cases below stream the same way with a smaller limit")
		}
		const n = 18037
		var b bytes.Buffer
		b.WriteString("{\n    \"events\": [\n")
		for i := range n {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString("        " + logEventJSON(i, ciTask(i, i >= 10)))
		}
		b.WriteString("\n    ],\n    \"searchedLogStreams\": [],\n    \"nextToken\": \"abc\"\n}\n")
		if b.Len() < 21<<20 {
			t.Fatalf("generated %d bytes, want over 21 MB", b.Len())
		}
		p := writeFile(t, t.TempDir(), "fle.json", b.Bytes())
		res := readPaths(t, Options{}, p)
		if len(res.errs) != 0 || len(res.events) != n || res.stats.Read[pipeline.SourceContainerInsights] != n {
			t.Fatalf("read %d events (%v), errors %v; want %d", len(res.events), res.stats.Read, res.errs[:min(3, len(res.errs))], n)
		}
		first, last := res.events[0], res.events[n-1]
		if first.Entity.TaskARN != "arn:aws:ecs:eu-west-1:111122223333:task/payments/"+fmt.Sprintf("%032x", 0) || first.Pos.Line != 3 || first.Pos.Record != 0 {
			t.Errorf("first event: entity %+v pos %+v", first.Entity, first.Pos)
		}
		if last.Pos.Record != n-1 || last.Pos.Line != 3+n-1 {
			t.Errorf("last event pos %+v, want line %d record %d", last.Pos, 3+n-1, n-1)
		}
	})

	// Each array about 2.5 times the limit (smaller with the race detector).
	limit, nRecs, nFinds, nLogs := 1<<20, 6000, 1500, 2500
	if raceEnabled {
		limit, nRecs, nFinds, nLogs = limit/8, nRecs/8, nFinds/8, nLogs/8
	}
	var recs, finds, findLines, logs, ctxLogs strings.Builder
	for i := range nRecs {
		if i > 0 {
			recs.WriteString(",")
		}
		recs.WriteString(ctLine(fmt.Sprintf("ct%d", i), `"2026-01-02T03:04:05Z"`))
	}
	gd, err := os.ReadFile("testdata/samples/guardduty/gd-finding-Container-Runtime-DockerSocketAccessed.elastic.json")
	if err != nil {
		t.Fatal(err)
	}
	for i := range nFinds {
		if i > 0 {
			finds.WriteString(",\n  ")
			findLines.WriteString(",")
		}
		f := bytes.Replace(bytes.TrimSpace(gd), []byte(`"id":"abcd1234"`), fmt.Appendf(nil, `"id":"gd%d"`, i), 1)
		finds.Write(f)
		findLines.Write(f)
	}
	for i := range nLogs {
		if i > 0 {
			logs.WriteString(",")
			ctxLogs.WriteString(",")
		}
		logs.WriteString(logEventJSON(i, ciTask(i, true)))
		ctxLogs.WriteString(logEventJSON(i, ciTask(i, false)))
	}
	small := ctLine("before", `"2026-01-02T03:04:05Z"`) + "\n"
	after := ctLine("after", `"2026-01-02T03:04:05Z"`) + "\n"
	for _, tc := range []struct {
		name, data string
		src        pipeline.Source
		n          int
		check      func(t *testing.T, evs []*pipeline.Event)
	}{
		{"Records not first, one JSON line amid others", small + `{"x":1,"Records":[` + recs.String() + `]}` + "\n" + after, pipeline.SourceCloudTrail, nRecs, nil},
		{"Records amid members, pretty-printed", "{\n  \"x\": {\"y\": [1, 2, {\"z\": null}]},\n  \"n\": -1.5e3,\n  \"Records\": [\n    " + recs.String() + "\n  ],\n  \"tail\": \"end\"\n}\n", pipeline.SourceCloudTrail, nRecs, nil},
		{"Findings after a nextToken", `{"NextToken":"t","Findings":[` + finds.String() + `]}`, pipeline.SourceGuardDuty, nFinds, nil},
		{"findings, lower case, a JSON line", small + `{"findings":[` + findLines.String() + `],"x":true}` + "\n" + after, pipeline.SourceGuardDuty, nFinds, nil},
		{"events of filter-log-events, not first", `{"searchedLogStreams":[{"logStreamName":"a","searchedCompletely":true}],"events":[` + logs.String() + `],"nextToken":"x"}`, pipeline.SourceContainerInsights, nLogs, nil},
		{"CWL DATA_MESSAGE: context members before logEvents", `{"messageType":"DATA_MESSAGE","owner":"444455556666","logGroup":"/aws/ecs/containerinsights/c1/performance","logStream":"FargateTelemetry-us-west-2-1","subscriptionFilters":["f"],"logEvents":[` + ctxLogs.String() + `]}`, pipeline.SourceContainerInsights, nLogs,
			func(t *testing.T, evs []*pipeline.Event) {
				for _, e := range evs {
					if e.Entity.Account != "444455556666" || e.Entity.Region != "us-west-2" {
						t.Fatalf("event %s lacks the payload's context: %+v", e.ID, e.Entity)
					}
				}
			}},
		{"CWL DATA_MESSAGE: logEvents first", `{"logEvents":[` + logs.String() + `],"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"g","logStream":"s"}`, pipeline.SourceContainerInsights, nLogs, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.data) < limit*3/2 {
				t.Fatalf("input of %d bytes is not over the limit", len(tc.data))
			}
			p := writeFile(t, t.TempDir(), "big.json", []byte(tc.data))
			res := readPaths(t, Options{MaxRecordBytes: limit}, p)
			if len(res.errs) != 0 {
				t.Fatalf("errors: %v", res.errs[:min(3, len(res.errs))])
			}
			want := map[pipeline.Source]int64{tc.src: int64(tc.n)}
			if n := int64(strings.Count(tc.data, `"before"`) + strings.Count(tc.data, `"after"`)); n > 0 {
				want[pipeline.SourceCloudTrail] += n
			}
			var total int64
			for _, n := range want {
				total += n
			}
			if fmt.Sprint(res.stats.Read) != fmt.Sprint(want) || int64(len(res.events)) != total {
				t.Fatalf("read %v (%d events), want %v", res.stats.Read, len(res.events), want)
			}
			for _, e := range res.events {
				checkEvent(t, e)
			}
			if tc.check != nil {
				tc.check(t, res.events)
			}
		})
	}

	// One record over the limit inside a large container costs only that
	// record.
	t.Run("one oversized record among many", func(t *testing.T) {
		huge := `{"eventVersion":"1.08","eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"PutObject","pad":"` + strings.Repeat("A", limit) + `"}`
		data := `{"x":1,"Records":[` + recs.String() + "," + huge + "," + ctLine("last", `"2026-01-02T03:04:05Z"`) + `]}`
		p := writeFile(t, t.TempDir(), "big.json", []byte(data))
		res := readPaths(t, Options{MaxRecordBytes: limit}, p)
		if len(res.events) != nRecs+1 || res.events[nRecs].ID != "last" {
			t.Fatalf("read %d events, want %d", len(res.events), nRecs+1)
		}
		if len(res.errs) != 1 || res.errs[0].Pos.Record != nRecs || res.errs[0].Reason != fmt.Sprintf("record exceeds %d bytes; skipped", limit) || res.stats.Skipped[SkipTooLarge] != 1 {
			t.Fatalf("errors %v skipped %v, want one too-large record %d", res.errs, res.stats.Skipped, nRecs)
		}
	})
}
