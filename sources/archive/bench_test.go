package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/ecscorr/ecscorr/pipeline"
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
	d := newDecoder(func(*pipeline.Event) error { return nil }, func(e RecordError) { b.Fatal(e) }, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.decode(recs[i&1023], pipeline.Position{}, nil, 0)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
