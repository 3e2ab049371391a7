# Rules on the default bus of this account and region, each targeting the
# queue. Names come from local.rule_names so that the queue policy can name
# their ARNs before they exist.
#
# CloudTrail events of global services (IAM: AttachRolePolicy,
# PutRolePolicy...) reach EventBridge in us-east-1 only: deploy in
# us-east-1, or forward them from there to this region's default bus.

resource "aws_cloudwatch_event_rule" "guardduty" {
  name        = local.rule_names.guardduty
  description = "GuardDuty findings to ecscorr"
  event_pattern = jsonencode({
    source        = ["aws.guardduty"]
    "detail-type" = ["GuardDuty Finding"]
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_rule" "ecs_task_state" {
  name        = local.rule_names.ecs_task
  description = "ECS task state changes to ecscorr (container id → task map for Falco alerts)"
  event_pattern = jsonencode(merge(
    {
      source        = ["aws.ecs"]
      "detail-type" = ["ECS Task State Change"]
    },
    length(var.watched_cluster_arns) == 0 ? {} : { detail = { clusterArn = var.watched_cluster_arns } },
  ))
  tags = local.tags
}

# One rule per event source, with exactly the event names the loaded rules
# compare on (local.cloudtrail_events).
resource "aws_cloudwatch_event_rule" "cloudtrail" {
  for_each    = local.cloudtrail_events
  name        = local.rule_names["cloudtrail_${replace(each.key, ".amazonaws.com", "")}"]
  description = "CloudTrail ${each.key} calls the ecscorr rules need"
  event_pattern = jsonencode({
    source        = ["aws.${replace(each.key, ".amazonaws.com", "")}"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = [each.key]
      eventName   = each.value
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_rule" "cloudtrail_objects" {
  count       = var.cloudtrail_bucket_name == null ? 0 : 1
  name        = local.rule_names.cloudtrail_objects
  description = "New CloudTrail log files to ecscorr (read from S3 by the task)"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [var.cloudtrail_bucket_name] }
      object = { key = [{ prefix = var.cloudtrail_prefix }] }
    }
  })
  tags = local.tags
}

locals {
  event_rules = merge(
    {
      guardduty = aws_cloudwatch_event_rule.guardduty.name
      ecs_task  = aws_cloudwatch_event_rule.ecs_task_state.name
    },
    { for k, r in aws_cloudwatch_event_rule.cloudtrail : "cloudtrail_${k}" => r.name },
    { for r in aws_cloudwatch_event_rule.cloudtrail_objects : "cloudtrail_objects" => r.name },
  )
}

resource "aws_cloudwatch_event_target" "queue" {
  for_each  = local.event_rules
  rule      = each.value
  target_id = "ecscorr-queue"
  arn       = aws_sqs_queue.events.arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  # Events EventBridge could not deliver go to the dead-letter queue too.
  dead_letter_config {
    arn = aws_sqs_queue.dead_letter.arn
  }
}
