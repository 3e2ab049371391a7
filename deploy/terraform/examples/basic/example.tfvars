region                      = "us-east-1"
name                        = "ecscorr"
image                       = "111122223333.dkr.ecr.us-east-1.amazonaws.com/ecscorr@sha256:0000000000000000000000000000000000000000000000000000000000000000"
ecr_repository_arn          = "arn:aws:ecr:us-east-1:111122223333:repository/ecscorr"
vpc_id                      = "vpc-0a1b2c3d4e5f60718"
subnet_ids                  = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
slack_webhook_secret_arn    = "arn:aws:secretsmanager:us-east-1:111122223333:secret:ecscorr/slack-webhook-AbCdEf"
cloudtrail_bucket_name      = "org-cloudtrail-111122223333"
container_insights_clusters = ["payments-prod", "batch-prod"]
tags                        = { team = "secops" }
