# The cluster, unless existing_cluster_name names one. Container Insights is
# on (Security Hub control ECS.12); for an existing cluster see that
# variable's description and README.md.
resource "aws_ecs_cluster" "this" {
  count = var.existing_cluster_name == null ? 1 : 0
  name  = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = local.tags
}

# The task's own logs (JSON, never a secret: docs/operations.md "Logs") and
# the incidents of the jsonl sink on stdout.
resource "aws_cloudwatch_log_group" "task" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}
