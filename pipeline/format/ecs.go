package format

import (
	"strings"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

type ecsDetail struct {
	ClusterArn        string          `json:"clusterArn"`
	TaskArn           string          `json:"taskArn"`
	TaskDefinitionArn string          `json:"taskDefinitionArn"`
	Group             string          `json:"group"`
	UpdatedAt         json.RawMessage `json:"updatedAt"`
	Containers        []struct {
		RuntimeID string `json:"runtimeId"`
	} `json:"containers"`
}

// ecs decodes ECS's own EventBridge events (Task State Change and the
// other ECS detail-types). Raw keeps the whole envelope.
func (d *Decoder) ecs(u *doc, data []byte, pos pipeline.Position) {
	const src = pipeline.SourceECS
	id := scalar(u.ID)
	if id == "" {
		d.reject(pos, src, SkipInvalid, "ECS event without id", data)
		return
	}
	var det ecsDetail
	if err := json.Unmarshal(u.Detail, &det); err != nil {
		d.reject(pos, src, SkipInvalid, "ECS event detail: "+errText(err), data)
		return
	}
	t, err := rawTime(u.Time)
	if err != nil {
		t, err = rawTime(det.UpdatedAt)
	}
	if err != nil {
		d.reject(pos, src, SkipInvalid, "ECS event without a usable time", data)
		return
	}
	ev := &pipeline.Event{
		ID:       id,
		Source:   src,
		Type:     u.DetailType,
		Time:     t,
		Severity: pipeline.SeverityInformational,
		Raw:      rawCopy(data),
		Pos:      pos,
	}
	e := &ev.Entity
	e.Account, e.Region = u.Account, u.Region
	e.Cluster = pipeline.ClusterName(det.ClusterArn)
	if _, ok := pipeline.ParseTaskARN(det.TaskArn); ok {
		e.TaskARN = det.TaskArn
	}
	e.TaskDefinitionARN = det.TaskDefinitionArn
	if s, ok := strings.CutPrefix(det.Group, "service:"); ok {
		e.Service = s
	}
	for _, c := range det.Containers {
		if c.RuntimeID != "" {
			ev.Containers = append(ev.Containers, c.RuntimeID)
		}
	}
	d.send(ev)
}
