package format

import (
	"bytes"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

type ctIdentity struct {
	Type        string `json:"type"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	UserName    string `json:"userName"`
	PrincipalID string `json:"principalId"`
	InvokedBy   string `json:"invokedBy"`
}

// ctParams holds the few ECS members of requestParameters and
// responseElements; they are raw because other services use the same
// names with other types.
type ctParams struct {
	Cluster        json.RawMessage `json:"cluster"`
	ClusterArn     json.RawMessage `json:"clusterArn"`
	Task           json.RawMessage `json:"task"`
	TaskArn        json.RawMessage `json:"taskArn"`
	Tasks          json.RawMessage `json:"tasks"`
	TaskDefinition json.RawMessage `json:"taskDefinition"`
	Service        json.RawMessage `json:"service"`
	ServiceName    json.RawMessage `json:"serviceName"`
}

// params decodes the ECS members of requestParameters or
// responseElements; anything that is not an object yields nothing.
func params(raw []byte) *ctParams {
	var p ctParams
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &p)
	}
	return &p
}

const ecsEventSource = "ecs.amazonaws.com"

func (d *Decoder) cloudTrail(u *ctFields, data []byte, pos pipeline.Position) {
	const src = pipeline.SourceCloudTrail
	if u.EventTime == "" {
		d.reject(pos, src, SkipInvalid, "CloudTrail record without eventTime", data)
		return
	}
	if u.EventSource == "" || u.EventName == "" {
		d.reject(pos, src, SkipInvalid, "CloudTrail record without eventSource or eventName", data)
		return
	}
	if strings.HasPrefix(u.EventSource, "aws:") {
		// S3/SQS/SNS notifications share the Records layout, not the schema.
		d.reject(pos, src, SkipUnsupported, "unsupported record: "+u.EventSource+" notification", data)
		return
	}
	t, err := pipeline.ParseTimeString(u.EventTime)
	if err != nil {
		d.reject(pos, src, SkipInvalid, "CloudTrail eventTime: "+err.Error(), data)
		return
	}
	if !d.inRange(t, pos, src, data) {
		return
	}
	typ := u.EventSource + ":" + u.EventName
	if !d.keep(src, typ, t, data) {
		return
	}
	ev := &pipeline.Event{
		ID:       u.EventID,
		Source:   src,
		Type:     typ,
		Time:     t,
		Severity: pipeline.SeverityInformational,
		Pos:      pos,
	}
	if v := &d.verdict; v.Matched != nil {
		ev.Judged, ev.JudgedBy = v.Matched, v.By
	}
	if d.verdict.NoRaw {
		// The matchers have read it and nothing else will: hash what it
		// says instead of keeping a copy.
		ev.HashContent(bytes.TrimSpace(data))
	} else {
		ev.Raw = rawCopy(data)
	}
	if ev.ID == "" {
		ev.ID = hashID(string(bytes.TrimSpace(data)))
	}
	e := &ev.Entity
	e.Region = u.AWSRegion
	e.Account = u.RecipientAccountID
	if e.Account == "" {
		e.Account = u.UserIdentity.AccountID
	}
	e.Principal = principal(&u.UserIdentity)
	if u.EventSource == ecsEventSource {
		ecsEntity(e, u.RequestParameters, u.ResponseElements)
	}
	d.send(ev)
}

// principal picks who acted: the ARN, else the service that acted on the
// caller's behalf, the user name, the principal id, the identity type.
func principal(ui *ctIdentity) string {
	for _, s := range []string{ui.ARN, ui.InvokedBy, ui.UserName, ui.PrincipalID, ui.Type} {
		if s != "" {
			return s
		}
	}
	return ""
}

// ecsEntity fills cluster, task, task definition and service of an ECS
// API call from its request and response.
func ecsEntity(e *pipeline.Entity, req, resp *ctParams) {
	if req == nil {
		req = &ctParams{}
	}
	if resp == nil {
		resp = &ctParams{}
	}
	cluster := str(req.Cluster)
	if cluster == "" {
		cluster = str(resp.ClusterArn)
	}
	if cluster == "" {
		var c struct {
			ClusterArn  string `json:"clusterArn"`
			ClusterName string `json:"clusterName"`
		}
		if len(resp.Cluster) > 0 && resp.Cluster[0] == '{' && json.Unmarshal(resp.Cluster, &c) == nil {
			cluster = c.ClusterArn
			if cluster == "" {
				cluster = c.ClusterName
			}
		}
	}
	e.Cluster = pipeline.ClusterName(cluster)

	task := ""
	if len(resp.Tasks) > 0 && resp.Tasks[0] == '[' {
		var ts []struct {
			TaskArn string `json:"taskArn"`
		}
		if json.Unmarshal(resp.Tasks, &ts) == nil && len(ts) > 0 {
			task = ts[0].TaskArn
		}
	}
	if task == "" {
		task = str(resp.TaskArn)
	}
	if task == "" {
		task = str(req.Task)
	}
	if task != "" {
		e.TaskARN = pipeline.NormalizeTaskRef(task, e.Region, e.Account, e.Cluster)
		if e.Cluster == "" {
			if t, ok := pipeline.ParseTaskARN(e.TaskARN); ok {
				e.Cluster = t.Cluster
			}
		}
	}

	if len(resp.TaskDefinition) > 0 && resp.TaskDefinition[0] == '{' {
		var td struct {
			TaskDefinitionArn string `json:"taskDefinitionArn"`
		}
		if json.Unmarshal(resp.TaskDefinition, &td) == nil {
			e.TaskDefinitionARN = td.TaskDefinitionArn
		}
	}
	if e.TaskDefinitionARN == "" {
		for _, raw := range []json.RawMessage{req.TaskDefinition, resp.TaskDefinition} {
			if s := str(raw); isTaskDefARN(s) {
				e.TaskDefinitionARN = s
				break
			}
		}
	}

	svc := str(req.Service)
	if svc == "" {
		svc = str(req.ServiceName)
	}
	if svc == "" && len(resp.Service) > 0 && resp.Service[0] == '{' {
		var s struct {
			ServiceName    string `json:"serviceName"`
			TaskDefinition string `json:"taskDefinition"`
		}
		if json.Unmarshal(resp.Service, &s) == nil {
			svc = s.ServiceName
			if e.TaskDefinitionARN == "" && isTaskDefARN(s.TaskDefinition) {
				e.TaskDefinitionARN = s.TaskDefinition
			}
		}
	}
	e.Service = serviceName(svc)
}

func isTaskDefARN(s string) bool {
	return strings.HasPrefix(s, "arn:") && strings.Contains(s, ":task-definition/")
}

// serviceName shortens a service ARN (arn:...:service/<cluster>/<name> or
// the old arn:...:service/<name>) to its name.
func serviceName(s string) string {
	if !strings.HasPrefix(s, "arn:") {
		return s
	}
	i := strings.Index(s, ":service/")
	if i < 0 {
		return s
	}
	rest := s[i+len(":service/"):]
	if j := strings.LastIndexByte(rest, '/'); j >= 0 {
		return rest[j+1:]
	}
	return rest
}
