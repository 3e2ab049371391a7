# EventBridge → this queue → ecscorr's sqs source. Messages are deleted only
# after the commit that holds their effects; a message that keeps failing
# (5 receives) moves to the dead-letter queue.

resource "aws_sqs_queue" "dead_letter" {
  name                      = "${var.name}-events-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600
  tags                      = local.tags
}

resource "aws_sqs_queue" "events" {
  name = "${var.name}-events"
  # SSE-SQS: encrypted at rest, and EventBridge may send without a KMS
  # key policy grant (a CMK would need one for events.amazonaws.com).
  sqs_managed_sse_enabled    = true
  message_retention_seconds  = var.queue_message_retention_seconds
  visibility_timeout_seconds = 120
  receive_wait_time_seconds  = 20

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = 5
  })

  tags = local.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

# Only this module's EventBridge rules may send (aws:SourceArn), and only
# over TLS.
resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EventBridgeRulesOnly"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.events.arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = local.rule_arns }
          StringEquals = { "aws:SourceAccount" = local.account }
        }
      },
      {
        Sid       = "DenyWithoutTLS"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
        Resource  = aws_sqs_queue.events.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

# EventBridge puts what it could not deliver to the queue here (the
# targets' dead_letter_config), again only for this module's rules.
resource "aws_sqs_queue_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EventBridgeRulesOnly"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.dead_letter.arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = local.rule_arns }
          StringEquals = { "aws:SourceAccount" = local.account }
        }
      },
    ]
  })
}
