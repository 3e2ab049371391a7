package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

const benchRecords = 50_000

// ctRecord renders a realistic ~1.6 KB CloudTrail record; every 8th is an
// ECS call with request/response parameters.
func ctRecord(i int) string {
	names := []string{"AssumeRole", "GetObject", "DescribeInstances", "PutObject", "Decrypt", "ListBuckets", "GetCallerIdentity", "ExecuteCommand"}
	name := names[i%len(names)]
	src := map[string]string{"AssumeRole": "sts", "GetObject": "s3", "DescribeInstances": "ec2", "PutObject": "s3",
		"Decrypt": "kms", "ListBuckets": "s3", "GetCallerIdentity": "sts", "ExecuteCommand": "ecs"}[name] + ".amazonaws.com"
	task := fmt.Sprintf("%032x", i%2000)
	req := fmt.Sprintf(`{"bucketName":"bucket-%d","key":"logs/2023/07/10/object-%d.json","Host":"bucket-%d.s3.us-east-1.amazonaws.com"}`, i%50, i, i%50)
	resp := `null`
	if name == "ExecuteCommand" {
		req = fmt.Sprintf(`{"cluster":"prod-cluster","container":"app","command":"/bin/sh","interactive":true,"task":"%s"}`, task)
		resp = fmt.Sprintf(`{"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/prod-cluster","containerArn":"arn:aws:ecs:us-east-1:123456789012:container/prod-cluster/%s/0b0e2b1a","containerName":"app","interactive":true,"session":{"sessionId":"ecs-execute-command-0abc%d","streamUrl":"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/ecs-execute-command-0abc%d?role=publish_subscribe","tokenValue":"HIDDEN_DUE_TO_SECURITY_REASONS"},"taskArn":"arn:aws:ecs:us-east-1:123456789012:task/prod-cluster/%s"}`, task, i, i, task)
	}
	return fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAXXXXXXXXXXXXXXXXX:session-%d","arn":"arn:aws:sts::123456789012:assumed-role/role-%d/session-%d","accountId":"123456789012","accessKeyId":"ASIAXXXXXXXXXXXX%04d","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAXXXXXXXXXXXXXXXXX","arn":"arn:aws:iam::123456789012:role/role-%d","accountId":"123456789012","userName":"role-%d"},"webIdFederationData":{},"attributes":{"creationDate":"2023-07-10T11:00:00Z","mfaAuthenticated":"false"}}},"eventTime":"2023-07-10T%02d:%02d:%02dZ","eventSource":"%s","eventName":"%s","awsRegion":"us-east-1","sourceIPAddress":"10.%d.%d.%d","userAgent":"aws-sdk-go-v2/1.18.0 os/linux lang/go#1.20.5 md/GOOS#linux md/GOARCH#amd64 api/s3#1.35.0","requestParameters":%s,"responseElements":%s,"additionalEventData":{"SignatureVersion":"SigV4","CipherSuite":"ECDHE-RSA-AES128-GCM-SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4","bytesTransferredOut":%d},"requestID":"REQ%013d","eventID":"%08x-1111-2222-3333-%012d","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::bucket-%d/logs/object-%d.json"},{"accountId":"123456789012","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::bucket-%d"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"123456789012","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.2","cipherSuite":"ECDHE-RSA-AES128-GCM-SHA256","clientProvidedHostHeader":"bucket-%d.s3.us-east-1.amazonaws.com"}}`,
		i, i%300, i, i%10000, i%300, i%300, (i/3600)%24, (i/60)%60, i%60, src, name, i%256, (i/256)%256, i%200, req, resp, i*7, i, i, i, i%50, i, i%50, i%50)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := kgzip.NewWriterLevel(&buf, 6)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// benchFile writes a corpus file and benchmarks reading it.
func benchFile(b *testing.B, name string, data []byte, n int) {
	b.Helper()
	path := filepath.Join(b.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data = nil
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := NewReader(Options{})
		got := 0
		err := r.ReadFile(ctx, path, func(*pipeline.Event) error { got++; return nil }, func(e RecordError) { b.Fatalf("bad record: %v", e) })
		if err != nil || got != n {
			b.Fatalf("read %d events, err %v; want %d", got, err, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadCloudTrailGzip(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"Records":[`)
	for i := range benchRecords {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(ctRecord(i))
	}
	buf.WriteString(`]}`)
	b.SetBytes(int64(buf.Len()))
	benchFile(b, "ct.json.gz", gz(buf.Bytes()), benchRecords)
}

func BenchmarkReadCloudTrailJSONLines(b *testing.B) {
	var buf bytes.Buffer
	for i := range benchRecords {
		buf.WriteString(ctRecord(i))
		buf.WriteByte('\n')
	}
	b.SetBytes(int64(buf.Len()))
	benchFile(b, "ct.jsonl", buf.Bytes(), benchRecords)
}

func BenchmarkDecodeCloudTrailRecord(b *testing.B) {
	recs := make([][]byte, 1024)
	for i := range recs {
		recs[i] = []byte(ctRecord(i))
	}
	d := format.NewDecoder(format.DecoderOptions{Emit: func(*pipeline.Event) error { return nil }, Bad: func(e RecordError) { b.Fatal(e) }})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Decode(recs[i&1023], pipeline.Position{})
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// lineCorpus builds n JSON lines from a template file's records, varying
// one field so that records differ.
func lineCorpus(b *testing.B, n int, gen func(i int) string) []byte {
	b.Helper()
	var buf bytes.Buffer
	for i := range n {
		buf.WriteString(gen(i))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func firstLine(b *testing.B, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if len(data) > 2 && data[0] == 0x1f {
		if data, err = gunzipTest(data, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return string(line)
}

func BenchmarkReadGuardDutyExportGzip(b *testing.B) {
	tmpl := firstLine(b, "testdata/constructed/guardduty-export.jsonl.gz")
	data := lineCorpus(b, benchRecords, func(i int) string {
		return strings.Replace(tmpl, `"5ec2f9a0b1c24d3e8f7a6b5c4d3e2f1a"`, fmt.Sprintf(`"%032x"`, i), 1)
	})
	b.SetBytes(int64(len(data)))
	benchFile(b, "gd.jsonl.gz", gz(data), benchRecords)
}

func BenchmarkReadContainerInsights(b *testing.B) {
	data := lineCorpus(b, benchRecords, func(i int) string {
		return fmt.Sprintf(`{"Version":"0","Type":"Task","TaskId":"%032x","TaskDefinitionFamily":"payments-api","TaskDefinitionRevision":"42","ServiceName":"payments-api","ClusterName":"payments","AccountID":"111122223333","Region":"eu-west-1","AvailabilityZone":"eu-west-1a","KnownStatus":"RUNNING","LaunchType":"FARGATE","PullStartedAt":1772445950000,"PullStoppedAt":1772445960000,"CreatedAt":1772445940000,"StartedAt":1772445970000,"Timestamp":%d,"CpuUtilized":%d.5,"CpuReserved":512.0,"MemoryUtilized":301,"MemoryReserved":1024,"StorageReadBytes":0,"StorageWriteBytes":4096,"NetworkRxBytes":1234,"NetworkRxDropped":0,"NetworkRxErrors":0,"NetworkRxPackets":20,"NetworkTxBytes":98765,"NetworkTxDropped":0,"NetworkTxErrors":0,"NetworkTxPackets":80,"CloudWatchMetrics":[{"Namespace":"ECS/ContainerInsights","Metrics":[{"Name":"CpuUtilized","Unit":"None"},{"Name":"CpuReserved","Unit":"None"},{"Name":"MemoryUtilized","Unit":"Megabytes"},{"Name":"MemoryReserved","Unit":"Megabytes"}],"Dimensions":[["ClusterName"],["ClusterName","TaskDefinitionFamily"]]}]}`,
			i%2000, 1772446560000+int64(i/2000)*60000, i%512)
	})
	b.SetBytes(int64(len(data)))
	benchFile(b, "ci.jsonl", data, benchRecords)
}

func BenchmarkReadFalco(b *testing.B) {
	tmpl := firstLine(b, "testdata/constructed/falco-alerts-ecs.jsonl")
	data := lineCorpus(b, benchRecords, func(i int) string {
		return strings.Replace(tmpl, `"2026-03-02T10:16:00.123456789Z"`, fmt.Sprintf(`"2026-03-02T10:16:%02d.%09dZ"`, i%60, i), 1)
	})
	b.SetBytes(int64(len(data)))
	benchFile(b, "falco.jsonl", data, benchRecords)
}

// BenchmarkReadCWLSubscriptionGzip: gzip subscription payloads of 100
// Container Insights events each, concatenated as Firehose writes them.
func BenchmarkReadCWLSubscriptionGzip(b *testing.B) {
	var buf bytes.Buffer
	for p := range benchRecords / 100 {
		buf.WriteString(`{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/aws/ecs/containerinsights/payments/performance","logStream":"FargateTelemetry-1","subscriptionFilters":["f"],"logEvents":[`)
		for i := range 100 {
			if i > 0 {
				buf.WriteByte(',')
			}
			msg := fmt.Sprintf(`{"Version":"0","Type":"Container","ContainerName":"api","TaskId":"%032x","TaskDefinitionFamily":"payments-api","TaskDefinitionRevision":"42","ClusterName":"payments","Region":"eu-west-1","Timestamp":%d,"CpuUtilized":%d.5,"CpuReserved":0.0,"MemoryUtilized":290,"MemoryReserved":1024}`, (p*100+i)%2000, 1772446560000+int64(p)*60000, i)
			fmt.Fprintf(&buf, `{"id":"%d","timestamp":%d,"message":%s}`, p*100+i, 1772446560000+int64(p)*60000, strconv.Quote(msg))
		}
		buf.WriteString(`]}`)
	}
	b.SetBytes(int64(buf.Len()))
	benchFile(b, "cwl.gz", gz(buf.Bytes()), benchRecords)
}
