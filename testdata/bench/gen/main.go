// Command gen writes a seeded, realistic replay corpus for `make bench`:
// CloudTrail-heavy S3 objects (gzip) with GuardDuty S3 exports, Container
// Insights performance events and Falco alerts mixed in, plus a few attack
// chains so that rules fire. Same seed, same bytes.
//
//	go run ./testdata/bench/gen -out /tmp/ecscorr-bench -events 1000000 -seed 1
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

type obj = map[string]any

const (
	acct   = "111122223333"
	region = "eu-west-1"
)

var (
	start    = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	clusters = []string{"prod", "staging", "batch"}
	// CloudTrail mix: mostly read-only noise, some ECS control plane, a few drift calls.
	ctNames = []struct {
		src, name string
		w         int
	}{
		{"ec2.amazonaws.com", "DescribeInstances", 180}, {"sts.amazonaws.com", "AssumeRole", 160},
		{"s3.amazonaws.com", "GetObject", 120}, {"kms.amazonaws.com", "Decrypt", 110},
		{"ecs.amazonaws.com", "DescribeTasks", 90}, {"ecs.amazonaws.com", "ListTasks", 60},
		{"iam.amazonaws.com", "GetRole", 50}, {"secretsmanager.amazonaws.com", "GetSecretValue", 50},
		{"logs.amazonaws.com", "CreateLogStream", 40}, {"ecs.amazonaws.com", "RunTask", 20},
		{"ecs.amazonaws.com", "StopTask", 15}, {"ecs.amazonaws.com", "UpdateService", 15},
		{"ecs.amazonaws.com", "ExecuteCommand", 5}, {"ecs.amazonaws.com", "RegisterTaskDefinition", 8},
		{"ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", 3}, {"iam.amazonaws.com", "AttachRolePolicy", 2},
		{"ecs.amazonaws.com", "UpdateClusterSettings", 1}, {"cloudtrail.amazonaws.com", "StopLogging", 1},
	}
	ctTotal int
)

func main() {
	out := flag.String("out", "/tmp/ecscorr-bench", "output folder (replaced)")
	n := flag.Int("events", 1_000_000, "number of records")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	for _, c := range ctNames {
		ctTotal += c.w
	}
	if err := os.RemoveAll(*out); err != nil {
		log.Fatal(err)
	}
	r := rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))
	g := &gen{r: r, out: *out}
	g.tasks = make([]string, 2000)
	for i := range g.tasks {
		g.tasks[i] = fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%032x", region, acct, clusters[i%3], r.Uint64()<<32|uint64(i))
	}
	// 80 % CloudTrail, 10 % Container Insights, 6 % Falco, 2 % GuardDuty, 2 % ECS events.
	span := 6 * time.Hour
	for i := 0; i < *n; i++ {
		t := start.Add(time.Duration(float64(span) * float64(i) / float64(*n))).Add(time.Duration(r.IntN(120)) * time.Second)
		switch p := r.IntN(100); {
		case p < 80:
			g.add("ct", g.cloudtrail(t, i))
		case p < 90:
			g.add("ci", g.metric(t, i))
		case p < 96:
			g.add("falco", g.falco(t, i))
		case p < 98:
			g.add("gd", g.guardduty(t, i))
		default:
			g.add("ecs", g.ecsEvent(t, i))
		}
	}
	g.flushAll()
	fmt.Printf("wrote %d records to %s\n", *n, *out)
}

type gen struct {
	r     *rand.Rand
	out   string
	tasks []string
	bufs  map[string][]obj
	files int
}

func (g *gen) task() string { return g.tasks[g.r.IntN(len(g.tasks))] }

func (g *gen) add(kind string, rec obj) {
	if g.bufs == nil {
		g.bufs = map[string][]obj{}
	}
	g.bufs[kind] = append(g.bufs[kind], rec)
	if len(g.bufs[kind]) >= 5000 {
		g.flush(kind)
	}
}

func (g *gen) flushAll() {
	for _, k := range []string{"ct", "ci", "falco", "gd", "ecs"} {
		g.flush(k)
	}
}

func (g *gen) flush(kind string) {
	recs := g.bufs[kind]
	if len(recs) == 0 {
		return
	}
	g.bufs[kind] = nil
	g.files++
	var path string
	switch kind {
	case "ct":
		path = filepath.Join(g.out, "AWSLogs", acct, "CloudTrail", region, "2026", "03", "02", fmt.Sprintf("%s_CloudTrail_%s_20260302T%04dZ_bench%08d.json.gz", acct, region, g.files, g.files))
	case "gd":
		path = filepath.Join(g.out, "AWSLogs", acct, "GuardDuty", region, "2026", "03", "02", fmt.Sprintf("%08d.jsonl.gz", g.files))
	default:
		path = filepath.Join(g.out, kind, fmt.Sprintf("%s-%08d.jsonl.gz", kind, g.files))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, 6)
	w := bufio.NewWriterSize(zw, 1<<20)
	enc := json.NewEncoder(w)
	if kind == "ct" {
		w.WriteString(`{"Records":[`)
		for i, rec := range recs {
			if i > 0 {
				w.WriteByte(',')
			}
			b, _ := json.Marshal(rec)
			w.Write(b)
		}
		w.WriteString("]}\n")
	} else {
		for _, rec := range recs {
			if err := enc.Encode(rec); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func (g *gen) uuid() string {
	a, b := g.r.Uint64(), g.r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>48&0xfff, b&0xffffffffffff)
}

func (g *gen) cloudtrail(t time.Time, i int) obj {
	k := g.r.IntN(ctTotal)
	c := ctNames[0]
	for _, x := range ctNames {
		if k < x.w {
			c = x
			break
		}
		k -= x.w
	}
	user := fmt.Sprintf("user%03d", g.r.IntN(300))
	task := g.task()
	cluster := clusters[g.r.IntN(3)]
	req := obj{"cluster": cluster}
	var resp any
	switch c.name {
	case "ExecuteCommand":
		req = obj{"cluster": cluster, "container": "app", "command": "/bin/sh", "interactive": true, "task": task[len(task)-32:]}
		resp = obj{"clusterArn": "arn:aws:ecs:" + region + ":" + acct + ":cluster/" + cluster, "containerName": "app", "interactive": true, "taskArn": task,
			"session": obj{"sessionId": "ecs-execute-command-" + g.uuid()[:17], "streamUrl": "wss://ssmmessages." + region + ".amazonaws.com/v1/data-channel/x", "tokenValue": "HIDDEN_DUE_TO_SECURITY_REASONS"}}
	case "RunTask":
		req = obj{"cluster": cluster, "taskDefinition": "web:12", "count": 1, "launchType": "FARGATE"}
		resp = obj{"tasks": []obj{{"taskArn": task, "lastStatus": "PROVISIONING"}}}
	case "StopTask":
		req = obj{"cluster": cluster, "task": task, "reason": "scale-in"}
	case "RegisterTaskDefinition":
		priv := g.r.IntN(50) == 0
		req = obj{"family": "web", "networkMode": "awsvpc", "containerDefinitions": []obj{{"name": "app", "image": "nginx:1.25", "privileged": priv, "essential": true}}}
		resp = obj{"taskDefinition": obj{"taskDefinitionArn": fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/web:%d", region, acct, 100+i%1000), "revision": 100 + i%1000}}
	case "UpdateClusterSettings":
		v := []string{"enabled", "enhanced", "disabled"}[g.r.IntN(3)]
		req = obj{"cluster": cluster, "settings": []obj{{"name": "containerInsights", "value": v}}}
	case "AuthorizeSecurityGroupIngress":
		cidr := []string{"10.0.0.0/16", "0.0.0.0/0", "172.16.0.0/12"}[g.r.IntN(3)]
		req = obj{"groupId": "sg-0a1b2c3d4e5f60718", "ipPermissions": obj{"items": []obj{{"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipRanges": obj{"items": []obj{{"cidrIp": cidr}}}}}}}
	case "AttachRolePolicy":
		p := []string{"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}[g.r.IntN(3)]
		req = obj{"roleName": "task-role-" + user, "policyArn": p}
	case "StopLogging":
		req = obj{"name": "arn:aws:cloudtrail:" + region + ":" + acct + ":trail/org-trail"}
	case "DescribeTasks":
		req = obj{"cluster": cluster, "tasks": []string{task}}
	case "GetObject":
		req = obj{"bucketName": "app-assets", "key": fmt.Sprintf("img/%d.png", g.r.IntN(100000)), "Host": "app-assets.s3." + region + ".amazonaws.com"}
	case "AssumeRole":
		req = obj{"roleArn": "arn:aws:iam::" + acct + ":role/app-" + user, "roleSessionName": user, "durationSeconds": 3600}
		resp = obj{"credentials": obj{"accessKeyId": "ASIA" + fmt.Sprintf("%016X", g.r.Uint64()), "expiration": t.Add(time.Hour).Format("Jan 2, 2006, 3:04:05 PM"), "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE"}}
	}
	rec := obj{
		"eventVersion": "1.09",
		"userIdentity": obj{"type": "AssumedRole", "principalId": "AROAEXAMPLE:" + user, "arn": "arn:aws:sts::" + acct + ":assumed-role/Engineer/" + user, "accountId": acct, "accessKeyId": "ASIAEXAMPLE" + user,
			"sessionContext": obj{"sessionIssuer": obj{"type": "Role", "principalId": "AROAEXAMPLE", "arn": "arn:aws:iam::" + acct + ":role/Engineer", "accountId": acct, "userName": "Engineer"},
				"attributes": obj{"creationDate": t.Add(-time.Hour).Format(time.RFC3339), "mfaAuthenticated": "true"}}},
		"eventTime": t.Format(time.RFC3339), "eventSource": c.src, "eventName": c.name, "awsRegion": region,
		"sourceIPAddress":   fmt.Sprintf("10.%d.%d.%d", g.r.IntN(256), g.r.IntN(256), g.r.IntN(256)),
		"userAgent":         "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/ecs#1.44.1",
		"requestParameters": req, "responseElements": resp,
		"requestID": g.uuid(), "eventID": g.uuid(), "readOnly": c.name[:3] == "Get" || c.name[:4] == "Desc" || c.name[:4] == "List",
		"eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": acct, "eventCategory": "Management",
		"tlsDetails": obj{"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ecs." + region + ".amazonaws.com"},
	}
	if g.r.IntN(40) == 0 {
		rec["errorCode"] = "AccessDenied"
		rec["errorMessage"] = "User is not authorized"
	}
	return rec
}

func (g *gen) metric(t time.Time, i int) obj {
	task := g.task()
	ta, _ := parse(task)
	cpu := 10 + g.r.Float64()*40
	if ta%97 == 0 { // a few miners
		cpu = 95 + g.r.Float64()*4
	}
	return obj{"Version": "0", "Type": "Task", "TaskId": task[len(task)-32:], "TaskDefinitionFamily": "web", "TaskDefinitionRevision": "12",
		"ClusterName": clusterOf(task), "AccountID": acct, "Region": region, "AvailabilityZone": region + "a", "KnownStatus": "RUNNING", "LaunchType": "FARGATE",
		"CreatedAt": start.UnixMilli(), "StartedAt": start.UnixMilli(), "Timestamp": t.Truncate(time.Minute).UnixMilli(),
		"CpuUtilized": cpu * 2.56, "CpuReserved": 256.0, "MemoryUtilized": 300 + g.r.IntN(200), "MemoryReserved": 512,
		"NetworkRxBytes": g.r.IntN(100000), "NetworkTxBytes": g.r.IntN(100000), "StorageReadBytes": 0, "StorageWriteBytes": 0,
		"CloudWatchMetrics": []obj{{"Namespace": "ECS/ContainerInsights", "Metrics": []obj{{"Name": "CpuUtilized", "Unit": "None"}, {"Name": "CpuReserved", "Unit": "None"}}, "Dimensions": [][]string{{"ClusterName"}}}}}
}

func parse(task string) (int, bool) {
	h := 0
	for _, c := range task {
		h = h*31 + int(c)
	}
	if h < 0 {
		h = -h
	}
	return h, true
}

func clusterOf(task string) string {
	for _, c := range clusters {
		if len(task) > 33 && task[len(task)-33-len(c):len(task)-33] == c {
			return c
		}
	}
	return "prod"
}

// Falco streams are mostly noise: the attack rules are a few percent.
var falcoRules = []struct {
	rule, prio string
	w          int
}{
	{"Read sensitive file untrusted", "Warning", 300}, {"Terminal shell in container", "Notice", 200},
	{"Contact K8S API Server From Container", "Notice", 150}, {"Launch Package Management Process in Container", "Error", 150},
	{"Clear Log Activities", "Warning", 100}, {"Drop and execute new binary in container", "Critical", 60},
	{"Redirect STDOUT/STDIN to Network Connection in Container", "Notice", 20},
	{"Detect outbound connections to common miner pool ports", "Critical", 20},
}

func (g *gen) falco(t time.Time, i int) obj {
	k := g.r.IntN(1000)
	fr := falcoRules[0]
	for _, x := range falcoRules {
		if k < x.w {
			fr = x
			break
		}
		k -= x.w
	}
	task := g.task()
	ip := fmt.Sprintf("203.0.113.%d", g.r.IntN(250))
	port, evt := 443, "openat"
	switch fr.rule {
	case "Detect outbound connections to common miner pool ports":
		port, evt = 3333, "connect"
	case "Redirect STDOUT/STDIN to Network Connection in Container":
		port, evt = 4444, "dup2"
	case "Contact K8S API Server From Container":
		evt = "connect"
	}
	return obj{"time": t.Format(time.RFC3339Nano), "rule": fr.rule, "priority": fr.prio, "source": "syscall", "hostname": "ip-10-0-1-2.ec2.internal",
		"output":        fmt.Sprintf("%s | connection=%s:%d command=sh -i container_id=%s", fr.rule, ip, port, task[len(task)-12:]),
		"tags":          []string{"container", "mitre_execution"},
		"output_fields": obj{"container.id": task[len(task)-12:], "container.label[com.amazonaws.ecs.task-arn]": task, "evt.type": evt, "fd.sip": ip, "fd.rport": port, "proc.name": "sh", "proc.cmdline": "sh -i", "evt.time": t.UnixNano(), "seq": i}}
}

// Mostly non-runtime findings, as in a real account; runtime ones are rare.
var gdTypes = []string{"Recon:EC2/PortProbeUnprotectedPort", "Recon:EC2/PortProbeUnprotectedPort", "Recon:EC2/Portscan",
	"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", "Policy:IAMUser/RootCredentialUsage",
	"Discovery:S3/AnomalousBehavior", "Stealth:IAMUser/CloudTrailLoggingDisabled", "Execution:Runtime/NewBinaryExecuted",
	"Execution:Runtime/ReverseShell", "Backdoor:Runtime/C&CActivity.B", "CryptoCurrency:Runtime/BitcoinTool.B", "Recon:EC2/PortProbeUnprotectedPort"}

func (g *gen) guardduty(t time.Time, i int) obj {
	task := g.task()
	typ := gdTypes[g.r.IntN(len(gdTypes))]
	ts := t.Format("2006-01-02T15:04:05.000Z")
	id := fmt.Sprintf("%032x", g.r.Uint64())
	return obj{"schemaVersion": "2.0", "accountId": acct, "region": region, "partition": "aws", "id": id, "type": typ, "severity": 8,
		"arn": "arn:aws:guardduty:" + region + ":" + acct + ":detector/d/finding/" + id, "title": typ, "description": typ,
		"createdAt": ts, "updatedAt": ts,
		"resource": obj{"resourceType": "ECSCluster", "ecsClusterDetails": obj{"name": clusterOf(task), "arn": "arn:aws:ecs:" + region + ":" + acct + ":cluster/" + clusterOf(task),
			"taskDetails": obj{"arn": task, "definitionArn": "arn:aws:ecs:" + region + ":" + acct + ":task-definition/web:12", "launchType": "FARGATE", "createdAt": 1.7729e9,
				"containers": []obj{{"containerRuntime": "containerd", "id": fmt.Sprintf("%064x", g.r.Uint64()), "name": "app", "image": "nginx:1.25"}}}}},
		"service": obj{"serviceName": "guardduty", "featureName": "RuntimeMonitoring", "detectorId": "d", "archived": false, "count": 1, "eventFirstSeen": ts, "eventLastSeen": ts,
			"runtimeDetails": obj{"process": obj{"name": "sh", "executablePath": "/bin/sh", "pid": 100 + i%1000}}}}
}

func (g *gen) ecsEvent(t time.Time, i int) obj {
	task := g.task()
	return obj{"version": "0", "id": g.uuid(), "detail-type": "ECS Task State Change", "source": "aws.ecs", "account": acct, "time": t.Format(time.RFC3339), "region": region,
		"resources": []string{task},
		"detail": obj{"clusterArn": "arn:aws:ecs:" + region + ":" + acct + ":cluster/" + clusterOf(task), "taskArn": task, "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
			"taskDefinitionArn": "arn:aws:ecs:" + region + ":" + acct + ":task-definition/web:12", "group": "service:web", "launchType": "FARGATE",
			"updatedAt": t.Format(time.RFC3339), "containers": []obj{{"name": "app", "taskArn": task, "lastStatus": "RUNNING", "runtimeId": task[len(task)-12:] + fmt.Sprintf("%052x", i)}}}}
}
