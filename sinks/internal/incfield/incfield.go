// Package incfield reads what sinks show of an incident out of its key,
// filling gaps from the task ARN (a task ARN names its account, region and
// cluster), so every sink names the same task, cluster and account.
package incfield

import (
	"cmp"
	"strings"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Fields are the entity fields of an incident, as far as known.
type Fields struct {
	TaskARN           string
	TaskID            string
	Service           string
	Cluster           string
	Account           string
	Region            string
	Partition         string
	TaskDefinitionARN string
	Principal         string
	ContainerID       string
}

// Of returns the fields of inc.
func Of(inc *pipeline.Incident) Fields {
	k := inc.Key
	f := Fields{
		TaskARN:           k["task_arn"],
		Service:           k["service"],
		Cluster:           pipeline.ClusterName(k["cluster"]),
		Account:           k["account"],
		Region:            k["region"],
		TaskDefinitionARN: k["task_definition_arn"],
		Principal:         k["principal"],
		ContainerID:       k["container_id"],
	}
	if t, ok := pipeline.ParseTaskARN(f.TaskARN); ok {
		f.TaskID = t.ID
		f.Partition = t.Partition
		f.Account = cmp.Or(f.Account, t.Account)
		f.Region = cmp.Or(f.Region, t.Region)
		f.Cluster = cmp.Or(f.Cluster, t.Cluster)
	}
	if f.Account == "" {
		f.Account = arnAccount(f.TaskDefinitionARN)
	}
	if f.Partition == "" && f.Region != "" {
		f.Partition = pipeline.PartitionForRegion(f.Region)
	}
	return f
}

// ClusterARN is the cluster's ARN when its account and region are known.
func (f Fields) ClusterARN() string {
	if f.Cluster == "" || f.Account == "" || f.Region == "" {
		return ""
	}
	return "arn:" + cmp.Or(f.Partition, "aws") + ":ecs:" + f.Region + ":" + f.Account + ":cluster/" + f.Cluster
}

// arnAccount returns the account field of an ARN.
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return ""
	}
	return parts[4]
}
