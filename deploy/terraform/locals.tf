data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region
  account   = data.aws_caller_identity.current.account_id

  # The CloudTrail calls routed to the queue: the built-in rule pack's
  # (local.builtin_cloudtrail_events, generated from the rules into
  # cloudtrail_events.tf.json; deploy_test.go fails when it is stale) and
  # the caller's own.
  cloudtrail_events = {
    for src in distinct(concat(keys(local.builtin_cloudtrail_events), keys(var.extra_cloudtrail_events))) :
    src => sort(distinct(concat(lookup(local.builtin_cloudtrail_events, src, []), lookup(var.extra_cloudtrail_events, src, []))))
  }

  # EventBridge rule names and ARNs, computed rather than read from the
  # rules so that the queue policy does not depend on them (rules on the
  # default bus: arn:PARTITION:events:REGION:ACCOUNT:rule/NAME).
  rule_names = merge(
    {
      guardduty = "${var.name}-guardduty-finding"
      ecs_task  = "${var.name}-ecs-task-state"
    },
    { for src, _ in local.cloudtrail_events : "cloudtrail_${replace(src, ".amazonaws.com", "")}" => "${var.name}-ct-${replace(src, ".amazonaws.com", "")}" },
    var.cloudtrail_bucket_name == null ? {} : { cloudtrail_objects = "${var.name}-cloudtrail-objects" },
  )
  rule_arns = [for k, n in local.rule_names : "arn:${local.partition}:events:${local.region}:${local.account}:rule/${n}"]

  cluster_name = var.existing_cluster_name != null ? var.existing_cluster_name : var.name
  cluster_arn  = "arn:${local.partition}:ecs:${local.region}:${local.account}:cluster/${local.cluster_name}"

  log_group_name = "/ecs/${var.name}"
  log_group_arn  = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:${local.log_group_name}"

  config_parameter_name = "/${var.name}/config"
  config_parameter_arn  = "arn:${local.partition}:ssm:${local.region}:${local.account}:parameter${local.config_parameter_name}"

  # ECS `secrets` of the container and what the execution role may read.
  slack_secrets = concat(
    var.slack_webhook_secret_arn == null ? [] : [{ name = "SLACK_WEBHOOK_URL", valueFrom = var.slack_webhook_secret_arn }],
    var.slack_bot_token_secret_arn == null ? [] : [{ name = "SLACK_BOT_TOKEN", valueFrom = var.slack_bot_token_secret_arn }],
  )
  secret_arns = [for s in local.slack_secrets : s.valueFrom]

  # The task runs as this uid; the EFS access point owns the state as it.
  uid = 65532

  # The rendered ecscorr config (a copy for the example inputs is committed
  # as examples/basic/ecscorr.yaml and checked with `ecscorr config check`).
  config_yaml = templatefile("${path.module}/templates/ecscorr.yaml.tftpl", {
    queue_url                   = "https://sqs.${local.region}.amazonaws.com/${local.account}/${var.name}-events"
    region                      = local.region
    container_insights_clusters = var.container_insights_clusters
    slack_webhook               = var.slack_webhook_secret_arn != null
    slack_bot                   = var.slack_bot_token_secret_arn != null
    slack_channel               = var.slack_channel == null ? "" : var.slack_channel
    slack_min_severity          = var.slack_min_severity
    securityhub                 = var.securityhub
    eventbridge_bus             = var.eventbridge_bus_arn == null ? "" : var.eventbridge_bus_arn
  })

  tags = merge({ "app" = "ecscorr" }, var.tags)
}
