# A root module that runs ecscorr with deploy/terraform:
#   terraform init && terraform apply -var-file=example.tfvars
# examples/basic/ecscorr.yaml is the config the module renders for
# example.tfvars (deploy_test.go keeps it current and runs
# `ecscorr config check` on it).

provider "aws" {
  region = var.region
}

module "ecscorr" {
  source = "../.."

  name                        = var.name
  image                       = var.image
  ecr_repository_arn          = var.ecr_repository_arn
  vpc_id                      = var.vpc_id
  subnet_ids                  = var.subnet_ids
  slack_webhook_secret_arn    = var.slack_webhook_secret_arn
  cloudtrail_bucket_name      = var.cloudtrail_bucket_name
  container_insights_clusters = var.container_insights_clusters
  tags                        = var.tags
}

output "queue_url" {
  description = "The events queue."
  value       = module.ecscorr.queue_url
}

output "config_yaml" {
  description = "The rendered ecscorr config."
  value       = module.ecscorr.config_yaml
}
