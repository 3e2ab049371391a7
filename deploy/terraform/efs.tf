# The Badger state (engine state, applied-event ids, source positions, the
# outbox) lives on EFS so that it survives task replacement: a task started
# on a fresh local volume would forget open incidents, sequences in flight
# and the outbox of undelivered incidents. Exactly one task writes it (the
# service runs one task and never two at once; Badger also locks the
# directory), so EFS's latency is paid only by the commit every second.

resource "aws_efs_file_system" "state" {
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"
  tags             = merge(local.tags, { Name = "${var.name}-state" })
}

resource "aws_efs_mount_target" "state" {
  for_each        = toset(var.subnet_ids)
  file_system_id  = aws_efs_file_system.state.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

# The task sees only /ecscorr on the file system, as uid/gid 65532 whatever
# the client claims.
resource "aws_efs_access_point" "state" {
  file_system_id = aws_efs_file_system.state.id

  posix_user {
    uid = local.uid
    gid = local.uid
  }

  root_directory {
    path = "/ecscorr"
    creation_info {
      owner_uid   = local.uid
      owner_gid   = local.uid
      permissions = "0750"
    }
  }

  tags = local.tags
}

# Only TLS, only through the access point, only the task role.
resource "aws_efs_file_system_policy" "state" {
  file_system_id = aws_efs_file_system.state.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyWithoutTLS"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
        Resource  = aws_efs_file_system.state.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "TaskRoleThroughAccessPoint"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.task.arn }
        Action    = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        Resource  = aws_efs_file_system.state.arn
        Condition = { StringEquals = { "elasticfilesystem:AccessPointArn" = aws_efs_access_point.state.arn } }
      },
    ]
  })
}

resource "aws_security_group" "efs" {
  name        = "${var.name}-efs"
  description = "EFS mount targets of the ecscorr state: NFS from the ecscorr task only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_task" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the ecscorr task"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.task.id
}
