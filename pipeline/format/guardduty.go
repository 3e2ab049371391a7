package format

import (
	"time"

	"bytes"

	json "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/pipeline"
)

type gdResource struct {
	ResourceType      string `json:"resourceType"`
	EcsClusterDetails *struct {
		Name        string `json:"name"`
		Arn         string `json:"arn"`
		TaskDetails *struct {
			Arn           string `json:"arn"`
			DefinitionArn string `json:"definitionArn"`
			Containers    []struct {
				ID string `json:"id"`
			} `json:"containers"`
		} `json:"taskDetails"`
	} `json:"ecsClusterDetails"`
	ContainerDetails *struct {
		ID string `json:"id"`
	} `json:"containerDetails"`
}

type gdService struct {
	EventFirstSeen json.RawMessage `json:"eventFirstSeen"`
	EventLastSeen  json.RawMessage `json:"eventLastSeen"`
	AdditionalInfo *struct {
		Sample json.RawMessage `json:"sample"`
		Value  json.RawMessage `json:"value"`
	} `json:"additionalInfo"`
	Detection *struct {
		Sequence *struct {
			Resources []struct {
				UID          string `json:"uid"`
				ResourceType string `json:"resourceType"`
			} `json:"resources"`
		} `json:"sequence"`
	} `json:"detection"`
}

func (d *Decoder) guardDuty(u *doc, data []byte, pos pipeline.Position) {
	const src = pipeline.SourceGuardDuty
	id, typ := scalar(u.ID), str(u.Type)
	if id == "" || typ == "" {
		d.reject(pos, src, SkipInvalid, "GuardDuty finding without id or type", data)
		return
	}
	var svc gdService
	if s := bytes.TrimSpace(u.Service); len(s) > 0 && s[0] == '{' {
		if err := json.Unmarshal(s, &svc); err != nil {
			d.reject(pos, src, SkipInvalid, "GuardDuty service: "+errText(err), data)
			return
		}
	}
	var res gdResource
	if r := bytes.TrimSpace(u.Resource); len(r) > 0 && r[0] == '{' {
		if err := json.Unmarshal(r, &res); err != nil {
			d.reject(pos, src, SkipInvalid, "GuardDuty resource: "+errText(err), data)
			return
		}
	}
	updated, errU := rawTime(u.UpdatedAt)
	t, err := rawTime(svc.EventLastSeen)
	if err != nil {
		t, err = updated, errU
	}
	if err != nil {
		t, err = rawTime(u.CreatedAt)
	}
	if err != nil {
		d.reject(pos, src, SkipInvalid, "GuardDuty finding without a usable eventLastSeen, updatedAt or createdAt", data)
		return
	}
	// The ID names the finding version: the same id comes back with a
	// later updatedAt as GuardDuty aggregates occurrences.
	ver := str(u.UpdatedAt)
	if ver == "" {
		if errU == nil {
			ver = updated.Format("2006-01-02T15:04:05.999999999Z07:00")
		} else {
			ver = t.Format("2006-01-02T15:04:05.999999999Z07:00")
		}
	}
	sev, _ := rawFloat(u.Severity)
	ev := &pipeline.Event{
		ID:       id + "@" + ver,
		Source:   src,
		Type:     typ,
		Time:     t,
		Severity: pipeline.GuardDutySeverity(sev),
		Sample:   gdSample(&svc),
		Raw:      rawCopy(data),
		Pos:      pos,
	}
	e := &ev.Entity
	e.Account, e.Region = u.AccountID, u.Region
	if c := res.EcsClusterDetails; c != nil {
		e.Cluster = pipeline.ClusterName(c.Name)
		if e.Cluster == "" {
			e.Cluster = pipeline.ClusterName(c.Arn)
		}
		if td := c.TaskDetails; td != nil {
			e.TaskARN = td.Arn
			e.TaskDefinitionARN = td.DefinitionArn
			if len(td.Containers) > 0 {
				e.ContainerID = td.Containers[0].ID
			}
		}
	}
	if c := res.ContainerDetails; c != nil && c.ID != "" {
		e.ContainerID = c.ID
	}
	if det := svc.Detection; det != nil && det.Sequence != nil {
		for _, r := range det.Sequence.Resources {
			switch r.ResourceType {
			case "ECS_TASK":
				if e.TaskARN == "" {
					e.TaskARN = r.UID
				}
			case "ECS_CLUSTER":
				if e.Cluster == "" {
					e.Cluster = pipeline.ClusterName(r.UID)
				}
			}
		}
	}
	d.send(ev)
}

// gdSample reports GuardDuty's sample-finding flag, set either as
// additionalInfo.sample or inside the additionalInfo.value JSON string.
func gdSample(s *gdService) bool {
	ai := s.AdditionalInfo
	if ai == nil {
		return false
	}
	if rawBool(ai.Sample) {
		return true
	}
	v := str(ai.Value)
	if v == "" {
		return false
	}
	var inner struct {
		Sample json.RawMessage `json:"sample"`
	}
	return json.Unmarshal([]byte(v), &inner) == nil && rawBool(inner.Sample)
}

// Began returns when the activity an event's record reports began, when
// the record says so: a GuardDuty finding's service.eventFirstSeen (its
// event time is eventLastSeen, the time it was known, which orders it).
// An incident then shows when the activity started, not when the finding
// was last updated.
func Began(src pipeline.Source, raw []byte) (time.Time, bool) {
	if src != pipeline.SourceGuardDuty || len(raw) == 0 {
		return time.Time{}, false
	}
	var u struct {
		Service *struct {
			EventFirstSeen json.RawMessage `json:"eventFirstSeen"`
		} `json:"service"`
	}
	if json.Unmarshal(raw, &u) != nil || u.Service == nil {
		return time.Time{}, false
	}
	t, err := rawTime(u.Service.EventFirstSeen)
	return t, err == nil
}
