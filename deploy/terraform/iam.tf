# Each conditional adds one statement: HCL cannot unify `c ? [] : [a, b]`
# when a and b differ in shape (deploy_test.go evaluates these).
#
# Least privilege. Every Allow names its resources; the only "*" resources
# are actions that support no resource-level permissions (see
# deploy/deploy_test.go, starAllowed, for each with its reason).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    # Only tasks of this account (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account}:*"]
    }
  }
}

# ---------- Task role: what ecscorr itself calls ----------

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "ecscorr task: read its queue, the CloudTrail objects and Container Insights logs; write incidents"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "task" {
  name = "ecscorr"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ReadQueue"
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch", "sqs:GetQueueAttributes"]
          Resource = [aws_sqs_queue.events.arn]
        },
        {
          Sid      = "StateOnEFS"
          Effect   = "Allow"
          Action   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
          Resource = [aws_efs_file_system.state.arn]
          Condition = {
            StringEquals = { "elasticfilesystem:AccessPointArn" = aws_efs_access_point.state.arn }
          }
        },
      ],
      var.cloudtrail_bucket_name == null ? [] : [
        {
          Sid      = "ReadCloudTrailObjects"
          Effect   = "Allow"
          Action   = ["s3:GetObject"]
          Resource = ["arn:${local.partition}:s3:::${var.cloudtrail_bucket_name}/${var.cloudtrail_prefix}*"]
        },
      ],
      var.cloudtrail_bucket_name == null ? [] : [
        {
          Sid       = "ListCloudTrailPrefix"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = ["arn:${local.partition}:s3:::${var.cloudtrail_bucket_name}"]
          Condition = { StringLike = { "s3:prefix" = ["${var.cloudtrail_prefix}*"] } }
        },
      ],
      var.cloudtrail_bucket_name == null || var.cloudtrail_kms_key_arn == null ? [] : [
        {
          Sid       = "DecryptCloudTrailObjects"
          Effect    = "Allow"
          Action    = ["kms:Decrypt"]
          Resource  = [var.cloudtrail_kms_key_arn]
          Condition = { StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" } }
        },
      ],
      length(var.container_insights_clusters) == 0 ? [] : [
        {
          Sid      = "ReadContainerInsights"
          Effect   = "Allow"
          Action   = ["logs:FilterLogEvents", "logs:DescribeLogStreams"]
          Resource = [for c in var.container_insights_clusters : "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/ecs/containerinsights/${c}/performance:*"]
        },
      ],
      length(var.container_insights_clusters) == 0 ? [] : [
        {
          # Finds the clusters' log groups. DescribeLogGroups has no
          # resource-level permissions (starAllowed in deploy_test.go).
          Sid      = "ListLogGroups"
          Effect   = "Allow"
          Action   = ["logs:DescribeLogGroups"]
          Resource = ["*"]
        },
      ],
      var.securityhub ? [
        {
          Sid      = "ImportFindings"
          Effect   = "Allow"
          Action   = ["securityhub:BatchImportFindings"]
          Resource = ["arn:${local.partition}:securityhub:${local.region}:${local.account}:product/${local.account}/default"]
        },
      ] : [],
      var.eventbridge_bus_arn == null ? [] : [
        {
          Sid      = "PutIncidents"
          Effect   = "Allow"
          Action   = ["events:PutEvents"]
          Resource = [var.eventbridge_bus_arn]
        },
      ],
    )
  })
}

# ---------- Execution role: what ECS does to start the task ----------

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ecscorr task execution: pull the image, write its logs, read its secrets and config"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

# The AWS-managed AmazonECSTaskExecutionRolePolicy, scoped to this task's
# repository and log group, plus the named secrets and the config parameter.
resource "aws_iam_role_policy" "execution" {
  name = "ecscorr-execution"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "WriteTaskLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = ["${local.log_group_arn}:*"]
        },
        {
          Sid      = "ReadConfig"
          Effect   = "Allow"
          Action   = ["ssm:GetParameters"]
          Resource = [local.config_parameter_arn]
        },
      ],
      var.ecr_repository_arn == null ? [] : [
        {
          # GetAuthorizationToken has no resource-level permissions
          # (starAllowed in deploy_test.go).
          Sid      = "ECRLogin"
          Effect   = "Allow"
          Action   = ["ecr:GetAuthorizationToken"]
          Resource = ["*"]
        },
      ],
      var.ecr_repository_arn == null ? [] : [
        {
          Sid      = "PullImage"
          Effect   = "Allow"
          Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
          Resource = [var.ecr_repository_arn]
        },
      ],
      length(local.secret_arns) == 0 ? [] : [
        {
          Sid      = "ReadSlackSecrets"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = local.secret_arns
        },
      ],
      var.secrets_kms_key_arn == null ? [] : [
        {
          Sid      = "DecryptSecrets"
          Effect   = "Allow"
          Action   = ["kms:Decrypt"]
          Resource = [var.secrets_kms_key_arn]
          Condition = {
            StringEquals = { "kms:ViaService" = ["secretsmanager.${local.region}.amazonaws.com", "ssm.${local.region}.amazonaws.com"] }
          }
        },
      ],
    )
  })
}
