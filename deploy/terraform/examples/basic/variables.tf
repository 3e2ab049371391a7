variable "region" {
  description = "Region to deploy in (us-east-1 also receives IAM's CloudTrail events)."
  type        = string
}

variable "name" {
  description = "Name prefix."
  type        = string
  default     = "ecscorr"
}

variable "image" {
  description = "ecscorr image pinned by digest."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository of the image."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC of the subnets."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets."
  type        = list(string)
}

variable "slack_webhook_secret_arn" {
  description = "Secrets Manager secret holding the Slack webhook URL."
  type        = string
  default     = null
}

variable "cloudtrail_bucket_name" {
  description = "CloudTrail bucket (EventBridge notifications enabled)."
  type        = string
  default     = null
}

variable "container_insights_clusters" {
  description = "Clusters whose Container Insights performance events are read."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags."
  type        = map(string)
  default     = {}
}
