output "cluster_arn" {
  description = "ARN of the cluster the service runs in."
  value       = var.existing_cluster_name == null ? aws_ecs_cluster.this[0].arn : local.cluster_arn
}

output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "task_definition_arn" {
  description = "ARN of the task definition revision."
  value       = aws_ecs_task_definition.this.arn
}

output "queue_url" {
  description = "URL of the events queue (the sqs source's queue_url)."
  value       = aws_sqs_queue.events.id
}

output "queue_arn" {
  description = "ARN of the events queue."
  value       = aws_sqs_queue.events.arn
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue (messages that failed 5 receives, events EventBridge could not deliver)."
  value       = aws_sqs_queue.dead_letter.arn
}

output "task_role_arn" {
  description = "ARN of the task role (what ecscorr calls)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the execution role (image pull, logs, secrets, config)."
  value       = aws_iam_role.execution.arn
}

output "event_rule_names" {
  description = "Names of the EventBridge rules feeding the queue."
  value       = values(local.rule_names)
}

output "cloudtrail_events" {
  description = "The CloudTrail calls routed to the queue: eventSource => eventNames."
  value       = local.cloudtrail_events
}

output "log_group_name" {
  description = "The task's log group (ecscorr's JSON logs and the jsonl incidents)."
  value       = aws_cloudwatch_log_group.task.name
}

output "config_parameter_name" {
  description = "SSM parameter holding the rendered ecscorr config."
  value       = aws_ssm_parameter.config.name
}

output "config_yaml" {
  description = "The rendered ecscorr config."
  value       = local.config_yaml
}

output "efs_file_system_id" {
  description = "EFS file system of the state (back it up with AWS Backup if incidents must survive its loss)."
  value       = aws_efs_file_system.state.id
}
