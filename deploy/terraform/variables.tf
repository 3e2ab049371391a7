variable "name" {
  description = "Name prefix of every resource (cluster, service, queue, roles, rules)."
  type        = string
  default     = "ecscorr"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name: lower-case letters, digits and hyphens, starting with a letter, at most 31 characters (IAM role and rule names are built from it)."
  }
}

variable "image" {
  description = "ecscorr image (deploy/Dockerfile), pinned by digest: REGISTRY/REPO@sha256:... ."
  type        = string

  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image: pin the image by digest (…@sha256:<64 hex>) so that a task replacement runs what was reviewed."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository holding the image; the execution role may pull only from it. null when the image is in a public registry."
  type        = string
  default     = null

  validation {
    condition     = var.ecr_repository_arn == null || can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.ecr_repository_arn))
    error_message = "ecr_repository_arn: an ECR repository ARN (arn:aws:ecr:REGION:ACCOUNT:repository/NAME) or null."
  }
}

variable "existing_cluster_name" {
  description = "Run in this existing ECS cluster instead of creating one. Turn Container Insights on for it yourself (Security Hub ECS.12): aws ecs update-cluster-settings --cluster NAME --settings name=containerInsights,value=enabled, and for clusters created later aws ecs put-account-setting --name containerInsights --value enabled."
  type        = string
  default     = null

  validation {
    condition     = var.existing_cluster_name == null || can(regex("^[A-Za-z0-9_-]{1,255}$", var.existing_cluster_name))
    error_message = "existing_cluster_name: an ECS cluster name (letters, digits, hyphens, underscores) or null."
  }
}

variable "container_insights" {
  description = "Container Insights on the cluster this module creates: enabled or enhanced (disabled is not offered: Security Hub control ECS.12)."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enabled", "enhanced"], var.container_insights)
    error_message = "container_insights: enabled or enhanced."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the task and the EFS mount targets (with a NAT gateway or VPC endpoints for SQS, S3, CloudWatch Logs, Secrets Manager, SSM, ECR, Security Hub)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids: at least one subnet id (subnet-…)."
  }
}

variable "vpc_id" {
  description = "VPC of subnet_ids (for the task's and EFS's security groups)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id: a VPC id (vpc-…)."
  }
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.cpu)
    error_message = "cpu: one of 256, 512, 1024, 2048, 4096."
  }
}

variable "memory" {
  description = "Fargate task memory (MiB). ecscorr's state budget (state_memory, 256MiB) plus Badger's caches fit in 1024."
  type        = number
  default     = 1024

  validation {
    condition     = var.memory >= 512 && var.memory <= 30720
    error_message = "memory: 512 to 30720 MiB (and a combination Fargate accepts for cpu)."
  }
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (the image must be built for it)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

variable "slack_webhook_secret_arn" {
  description = "Secrets Manager secret whose value is the Slack incoming-webhook URL; given to the container as SLACK_WEBHOOK_URL through `secrets`. null: no webhook sink."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.slack_webhook_secret_arn))
    error_message = "slack_webhook_secret_arn: a Secrets Manager secret ARN or null."
  }
}

variable "slack_bot_token_secret_arn" {
  description = "Secrets Manager secret whose value is a Slack bot token (xoxb-…); given as SLACK_BOT_TOKEN through `secrets`. Needs slack_channel. null: no bot sink."
  type        = string
  default     = null

  validation {
    condition     = var.slack_bot_token_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.slack_bot_token_secret_arn))
    error_message = "slack_bot_token_secret_arn: a Secrets Manager secret ARN or null."
  }
}

variable "slack_channel" {
  description = "Slack channel id (C…) the bot token posts to."
  type        = string
  default     = null

  validation {
    condition     = var.slack_bot_token_secret_arn == null || (var.slack_channel != null && can(regex("^[CG][A-Z0-9]{8,}$", coalesce(var.slack_channel, "-"))))
    error_message = "slack_channel: the channel id (C… or G…) is required with slack_bot_token_secret_arn."
  }
}

variable "slack_min_severity" {
  description = "Incidents below this severity are not posted to Slack."
  type        = string
  default     = "high"

  validation {
    condition     = contains(["info", "low", "medium", "high", "critical"], var.slack_min_severity)
    error_message = "slack_min_severity: info, low, medium, high or critical."
  }
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key encrypting the Slack secrets and the config parameter, if not the AWS-managed keys; the execution role may use it for kms:Decrypt only. null: AWS-managed keys."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn: a KMS key ARN (…:key/…) or null."
  }
}

variable "securityhub" {
  description = "Send incidents to Security Hub (BatchImportFindings on this account's default product)."
  type        = bool
  default     = true
}

variable "eventbridge_bus_arn" {
  description = "Also put incidents on this EventBridge bus (detail-type \"ecscorr Incident\"). null: no eventbridge sink."
  type        = string
  default     = null

  validation {
    condition     = var.eventbridge_bus_arn == null || can(regex("^arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/.+$", var.eventbridge_bus_arn))
    error_message = "eventbridge_bus_arn: an event bus ARN or null."
  }
}

variable "cloudtrail_bucket_name" {
  description = "S3 bucket of the CloudTrail trail. When set, an EventBridge rule sends its \"Object Created\" events under cloudtrail_prefix to the queue and the task may read those objects. The bucket must send events to EventBridge (aws s3api put-bucket-notification-configuration --notification-configuration '{\"EventBridgeConfiguration\":{}}'); this module does not manage the bucket. null: CloudTrail arrives only as \"AWS API Call via CloudTrail\" events."
  type        = string
  default     = null

  validation {
    condition     = var.cloudtrail_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.cloudtrail_bucket_name))
    error_message = "cloudtrail_bucket_name: an S3 bucket name or null."
  }
}

variable "cloudtrail_prefix" {
  description = "Key prefix of the trail's log files in cloudtrail_bucket_name (the task may read only below it)."
  type        = string
  default     = "AWSLogs/"

  validation {
    condition     = can(regex("^[^*]*/$", var.cloudtrail_prefix))
    error_message = "cloudtrail_prefix: a key prefix ending in / without wildcards."
  }
}

variable "cloudtrail_kms_key_arn" {
  description = "KMS key the trail encrypts its log files with (SSE-KMS); the task role may use it for kms:Decrypt through S3 only. null: SSE-S3."
  type        = string
  default     = null

  validation {
    condition     = var.cloudtrail_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.cloudtrail_kms_key_arn))
    error_message = "cloudtrail_kms_key_arn: a KMS key ARN or null."
  }
}

variable "extra_cloudtrail_events" {
  description = "More CloudTrail calls to route to the queue, for your own rules: eventSource => [eventName, ...]. The built-in pack's calls (cloudtrail_events.tf.json, generated from the rules) are always routed."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for src, names in var.extra_cloudtrail_events : can(regex("^[a-z0-9-]+\\.amazonaws\\.com$", src)) && length(names) > 0])
    error_message = "extra_cloudtrail_events: keys are event sources (ecs.amazonaws.com), values non-empty lists of event names."
  }
}

variable "container_insights_clusters" {
  description = "Clusters whose Container Insights performance events ecscorr reads from CloudWatch Logs (/aws/ecs/containerinsights/CLUSTER/performance). Empty: none (the mining baseline rule then has no CPU data)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.container_insights_clusters : can(regex("^[A-Za-z0-9_-]{1,255}$", c))])
    error_message = "container_insights_clusters: ECS cluster names."
  }
}

variable "watched_cluster_arns" {
  description = "Only these clusters' \"ECS Task State Change\" events go to the queue. Empty: every cluster of the account and region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.watched_cluster_arns : can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/.+$", c))])
    error_message = "watched_cluster_arns: ECS cluster ARNs."
  }
}

variable "log_retention_days" {
  description = "Retention of the task's own log group."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, …, 3653)."
  }
}

variable "queue_message_retention_seconds" {
  description = "How long the queue keeps an unread event (covers an outage of the task)."
  type        = number
  default     = 345600

  validation {
    condition     = var.queue_message_retention_seconds >= 3600 && var.queue_message_retention_seconds <= 1209600
    error_message = "queue_message_retention_seconds: 3600 (1 h) to 1209600 (14 days)."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
