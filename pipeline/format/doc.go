// Package format knows every log format ecscorr reads: CloudTrail records
// and S3 objects, EventBridge envelopes, GuardDuty findings, Container
// Insights performance events (EMF), CloudWatch Logs payloads, Falco
// json_output and ECS events. For each it says how a record is detected
// and decoded into a pipeline.Event (type, time, ID, entity). Every
// reader of records uses it: archive replay (sources/archive), rule tests
// and the queue and log sources to come; adding a format touches this
// package alone.
//
// # Decoding
//
// The registry (registry.go) lists every format once, in detection order;
// decoding, rule tests (SetTime, SuffixID) and signal dispatch (TypeFields)
// all read it. Decoder.Decode (and Decode) detects the shape of each
// document from one decode into a union of the top-level members of every
// format, in this order:
//
//  1. EventBridge envelope (detail-type + detail): "GuardDuty Finding" →
//     GuardDuty; "... via CloudTrail" → CloudTrail; source aws.ecs / "ECS
//     ..." → ECS event; anything else is skipped as unsupported.
//  2. {"Records":[...]} → each element a record (CloudTrail).
//  3. CloudWatch Logs subscription payload (messageType/logEvents):
//     CONTROL_MESSAGE is counted and dropped, each DATA_MESSAGE log event's
//     message is decoded recursively with the payload's owner, region and
//     log-group cluster as context. {"awslogs":{"data":...}} is unwrapped
//     (base64, gzip) first.
//  4. {"findings":[...]} / {"Findings":[...]} → GuardDuty findings.
//  5. {"events":[...]} (aws logs filter-log-events) → messages recursively.
//  6. eventSource + eventName/eventVersion → CloudTrail record.
//  7. ProductArn → Security Hub finding, unsupported.
//  8. schemaVersion, or id + type + resource/service → GuardDuty finding
//     (camelCase wire format; PascalCase matches too).
//  9. rule + output/output_fields/priority → Falco alert.
//  10. Type + Timestamp/TaskId/ClusterName → Container Insights event.
//
// Records elements, and JSON lines that start with {"eventVersion", are
// first decoded into a small CloudTrail-only struct (the hot path); only
// if that does not yield a complete CloudTrail record does the union
// decode run. Every event's Raw is a copy of its record's bytes (the
// inner record for envelopes and wrappers, the whole envelope for ECS
// events).
//
// A record that fails (bad JSON, wrong types, missing required members,
// unparsable times, too large, an event time before 2004 or after
// DecoderOptions.Latest) is reported to the Bad callback with its
// position and reason, counted by class (Decoder.Counts), and decoding
// goes on.
package format
