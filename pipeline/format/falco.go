package format

import (
	"strings"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

// falcoFields are the output_fields we read. Values are typed JSON in
// Falco's json_output (strings in gRPC), so they stay raw. Docker labels
// come in the bracket form (append_output extra_fields) or the dot form.
type falcoFields struct {
	ContainerID     json.RawMessage `json:"container.id"`
	ContainerFullID json.RawMessage `json:"container.full_id"`
	EvtTime         json.RawMessage `json:"evt.time"`
	TaskARNBracket  json.RawMessage `json:"container.label[com.amazonaws.ecs.task-arn]"`
	TaskARNDot      json.RawMessage `json:"container.label.com.amazonaws.ecs.task-arn"`
	ClusterBracket  json.RawMessage `json:"container.label[com.amazonaws.ecs.cluster]"`
	ClusterDot      json.RawMessage `json:"container.label.com.amazonaws.ecs.cluster"`
}

func (d *Decoder) falco(u *doc, data []byte, pos pipeline.Position) {
	const src = pipeline.SourceFalco
	f := u.OutputFields
	if f == nil {
		f = &falcoFields{}
	}
	timeText := str(u.Time)
	t, err := rawTime(u.Time)
	if err != nil {
		t, err = rawTime(f.EvtTime)
		timeText = scalar(f.EvtTime)
	}
	if err != nil {
		d.reject(pos, src, SkipInvalid, "Falco alert without a usable time or evt.time", data)
		return
	}
	ev := &pipeline.Event{
		ID:       u.UUID,
		Source:   src,
		Type:     u.Rule,
		Time:     t,
		Severity: pipeline.FalcoSeverity(u.Priority),
		Raw:      rawCopy(data),
		Pos:      pos,
	}
	if ev.ID == "" {
		ev.ID = hashID(timeText, u.Rule, u.Hostname, u.Output)
	}
	e := &ev.Entity
	if c := str(f.ContainerID); c != "" && c != "host" {
		e.ContainerID = c
	} else if c := str(f.ContainerFullID); c != "" && c != "host" {
		e.ContainerID = c
	}
	task := str(f.TaskARNBracket)
	if task == "" {
		task = str(f.TaskARNDot)
	}
	if _, ok := pipeline.ParseTaskARN(task); ok {
		e.TaskARN = task
	}
	cluster := str(f.ClusterBracket)
	if cluster == "" {
		cluster = str(f.ClusterDot)
	}
	if strings.HasPrefix(cluster, "arn:") || !strings.ContainsAny(cluster, ":/ ") {
		e.Cluster = pipeline.ClusterName(cluster)
	}
	d.send(ev)
}
