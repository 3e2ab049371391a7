package pipeline

import (
	"strings"
)

// TaskARN is a parsed ECS task ARN. Both formats exist in the wild:
//
//	long:   arn:aws:ecs:<region>:<account>:task/<cluster>/<id>
//	legacy: arn:aws:ecs:<region>:<account>:task/<id>
//
// Legacy ARNs have no cluster segment, so Cluster is empty for them.
type TaskARN struct {
	Partition string
	Region    string
	Account   string
	Cluster   string
	ID        string
}

// ParseTaskARN parses a task ARN in either format. It reports false for
// anything that is not an ECS task ARN.
func ParseTaskARN(s string) (TaskARN, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "ecs" {
		return TaskARN{}, false
	}
	res, ok := strings.CutPrefix(parts[5], "task/")
	if !ok || res == "" {
		return TaskARN{}, false
	}
	t := TaskARN{Partition: parts[1], Region: parts[3], Account: parts[4]}
	if cluster, id, found := strings.Cut(res, "/"); found {
		if cluster == "" || id == "" || strings.Contains(id, "/") {
			return TaskARN{}, false
		}
		t.Cluster, t.ID = cluster, id
	} else {
		t.ID = res
	}
	if t.Partition == "" || t.Region == "" || t.Account == "" {
		return TaskARN{}, false
	}
	return t, true
}

// String renders the ARN in the format it was parsed from.
func (t TaskARN) String() string {
	p := t.Partition
	if p == "" {
		p = "aws"
	}
	if t.Cluster == "" {
		return "arn:" + p + ":ecs:" + t.Region + ":" + t.Account + ":task/" + t.ID
	}
	return "arn:" + p + ":ecs:" + t.Region + ":" + t.Account + ":task/" + t.Cluster + "/" + t.ID
}

// BuildTaskARN makes a long-format task ARN from its parts, as needed for
// Container Insights (TaskId + ClusterName + AccountID + Region) and for
// CloudTrail calls that name a task by ID. cluster may be a name or a
// cluster ARN. It returns "" when a part is missing.
func BuildTaskARN(region, account, cluster, taskID string) string {
	cluster = ClusterName(cluster)
	if region == "" || account == "" || cluster == "" || taskID == "" {
		return ""
	}
	return TaskARN{Partition: PartitionForRegion(region), Region: region, Account: account, Cluster: cluster, ID: taskID}.String()
}

// NormalizeTaskRef turns what an API call says about a task (an ARN in
// either format, or a bare task ID) into a task ARN, using the cluster,
// region and account of the call for bare IDs. It returns "" if it cannot.
func NormalizeTaskRef(ref, region, account, cluster string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return ""
	}
	if strings.HasPrefix(ref, "arn:") {
		t, ok := ParseTaskARN(ref)
		if !ok {
			return ""
		}
		return t.String()
	}
	if strings.ContainsAny(ref, ":/ ") {
		return ""
	}
	return BuildTaskARN(region, account, cluster, ref)
}

// ClusterName returns the short name of a cluster given as a name or as an
// ARN (arn:aws:ecs:<region>:<account>:cluster/<name>).
func ClusterName(s string) string {
	if !strings.HasPrefix(s, "arn:") {
		return s
	}
	i := strings.LastIndex(s, ":cluster/")
	if i < 0 {
		return ""
	}
	return s[i+len(":cluster/"):]
}

// PartitionForRegion guesses the partition from a region name.
func PartitionForRegion(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}
