package format

import (
	"strings"

	"github.com/ecscorr/ecscorr/pipeline"
)

// insights decodes a Container Insights performance event (EMF), any Type.
func (d *Decoder) insights(u *doc, data []byte, pos pipeline.Position, wc *WrapContext) {
	const src = pipeline.SourceContainerInsights
	typ := str(u.Type)
	if typ == "" {
		d.reject(pos, src, SkipInvalid, "Container Insights event with a non-string Type", data)
		return
	}
	t, err := rawTime(u.Timestamp)
	if err != nil {
		d.reject(pos, src, SkipInvalid, "Container Insights event without a usable Timestamp: "+err.Error(), data)
		return
	}
	e := pipeline.Entity{
		Account: u.AccountID,
		Region:  u.Region,
		Cluster: pipeline.ClusterName(u.ClusterName),
		Service: u.ServiceName,
	}
	if wc != nil {
		// Container events lack account and region; the log subscription
		// knows them.
		if e.Account == "" {
			e.Account = wc.owner
		}
		if e.Region == "" {
			e.Region = wc.region
		}
		if e.Cluster == "" {
			e.Cluster = wc.cluster
		}
	}
	if u.TaskID != "" {
		e.TaskARN = pipeline.BuildTaskARN(e.Region, e.Account, e.Cluster, u.TaskID)
	}
	if rev := scalar(u.TaskDefinitionRevision); u.TaskDefinitionFamily != "" && rev != "" && e.Region != "" && e.Account != "" {
		e.TaskDefinitionARN = "arn:" + pipeline.PartitionForRegion(e.Region) + ":ecs:" + e.Region + ":" + e.Account +
			":task-definition/" + u.TaskDefinitionFamily + ":" + rev
	}
	ev := &pipeline.Event{
		ID: hashID("metrics", typ, e.Account, e.Region, e.Cluster, e.Service, u.TaskID, u.ContainerName,
			u.ContainerInstanceID, scalar(u.Timestamp)),
		Source:   src,
		Type:     "metrics/" + typ,
		Time:     t,
		Entity:   e,
		Severity: pipeline.SeverityInformational,
		Raw:      rawCopy(data),
		Pos:      pos,
	}
	d.send(ev)
}

// clusterFromLogGroup reads the cluster of a Container Insights log group
// (/aws/ecs/containerinsights/<cluster>/performance).
func clusterFromLogGroup(g string) string {
	rest, ok := strings.CutPrefix(g, "/aws/ecs/containerinsights/")
	if !ok {
		return ""
	}
	c, _, _ := strings.Cut(rest, "/")
	return c
}

// regionIn finds an AWS region name (xx-[gov-]word-N) in s, e.g. in a log
// stream name or log group ARN.
func regionIn(s string) string {
	for i := 0; i+9 <= len(s); i++ {
		if i > 0 && isLower(s[i-1]) {
			continue
		}
		if r := regionAt(s[i:]); r != "" {
			return r
		}
	}
	return ""
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

func regionAt(s string) string {
	if len(s) < 9 || !isLower(s[0]) || !isLower(s[1]) || s[2] != '-' {
		return ""
	}
	j := 3
	if strings.HasPrefix(s[j:], "gov-") || strings.HasPrefix(s[j:], "iso-") {
		j += 4
	}
	k := j
	for k < len(s) && isLower(s[k]) {
		k++
	}
	if k-j < 4 || k+2 > len(s) || s[k] != '-' || s[k+1] < '1' || s[k+1] > '9' {
		return ""
	}
	end := k + 2
	if end < len(s) && (isLower(s[end]) || (s[end] >= '0' && s[end] <= '9')) {
		return ""
	}
	return s[:end]
}
