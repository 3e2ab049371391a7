# `terraform init && terraform validate` and `terraform fmt -check -recursive`
# run in CI where a terraform binary can be installed; deploy/deploy_test.go
# parses and evaluates these files with hcl/v2 everywhere else.
terraform {
  # 1.9: validation blocks that refer to other variables.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
