# The ecscorr config. It holds no secret (the Slack URL and token arrive as
# SLACK_WEBHOOK_URL / SLACK_BOT_TOKEN through `secrets`, and the config names
# only the variables), so a String parameter; ECS injects it as
# ECSCORR_CONFIG_YAML and `ecscorr run --config env:ECSCORR_CONFIG_YAML`
# reads it. A change takes effect on the next deployment of the service.
resource "aws_ssm_parameter" "config" {
  name        = local.config_parameter_name
  description = "ecscorr config (deploy/terraform/templates/ecscorr.yaml.tftpl)"
  type        = "String"
  tier        = length(local.config_yaml) > 4096 ? "Advanced" : "Standard"
  value       = local.config_yaml
  tags        = local.tags
}

resource "aws_security_group" "task" {
  name        = "${var.name}-task"
  description = "ecscorr task: no ingress; HTTPS to AWS APIs and Slack, NFS to its EFS"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "task_https" {
  security_group_id = aws_security_group.task.id
  description       = "HTTPS to AWS APIs and Slack"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "task_nfs" {
  security_group_id            = aws_security_group.task.id
  description                  = "NFS to the state file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

locals {
  # The container definition. deploy_test.go turns it into the CloudTrail
  # RegisterTaskDefinition record that registering it produces and replays
  # it through ecscorr's own drift rules: none may fire.
  #
  # Nothing here blocks the GuardDuty Runtime Monitoring agent, which
  # GuardDuty adds to the task as a sidecar (automated agent for Fargate):
  # no pidMode, no ipcMode, no seccomp or AppArmor options, no
  # linuxParameters, and the execution role needs nothing for it.
  container = {
    name      = "ecscorr"
    image     = var.image
    essential = true
    command   = ["run", "--config", "env:ECSCORR_CONFIG_YAML"]
    # distroless nonroot; matches the EFS access point's POSIX user.
    user                   = "${local.uid}:${local.uid}"
    readonlyRootFilesystem = true
    privileged             = false
    # ECS sends SIGTERM, then SIGKILL after this: ecscorr commits, releases
    # unacknowledged messages and drains its sinks within shutdown_timeout
    # (25s).
    stopTimeout = 30
    environment = []
    secrets = concat(
      [{ name = "ECSCORR_CONFIG_YAML", valueFrom = local.config_parameter_arn }],
      local.slack_secrets,
    )
    mountPoints = [
      { sourceVolume = "state", containerPath = "/var/lib/ecscorr", readOnly = false },
    ]
    portMappings = []
    # The image is distroless (no shell, no curl): the binary checks itself.
    healthCheck = {
      command     = ["CMD", "/ecscorr", "healthcheck", "--url", "http://127.0.0.1:9090/healthz"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = local.log_group_name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "ecscorr"
      }
    }
  }
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  # awsvpc: the task has its own network namespace (no host network or PID
  # on Fargate).
  network_mode       = "awsvpc"
  cpu                = var.cpu
  memory             = var.memory
  task_role_arn      = aws_iam_role.task.arn
  execution_role_arn = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([local.container])

  volume {
    name = "state"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.state.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.state.id
        iam             = "ENABLED"
      }
    }
  }

  tags = local.tags
}

resource "aws_ecs_service" "this" {
  name            = var.name
  cluster         = var.existing_cluster_name == null ? aws_ecs_cluster.this[0].arn : local.cluster_arn
  task_definition = aws_ecs_task_definition.this.arn
  launch_type     = "FARGATE"
  # 1.4.0+ mounts EFS.
  platform_version = "LATEST"
  # One writer of the Badger state: never two tasks at once. A deployment
  # stops the old task (it commits on SIGTERM) before starting the new one;
  # events wait in the queue meanwhile.
  desired_count                      = 1
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  tags = local.tags

  depends_on = [aws_efs_mount_target.state, aws_iam_role_policy.task]
}
