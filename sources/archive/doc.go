// Package archive reads files and folders of archived security logs
// (CloudTrail, GuardDuty, Container Insights, Falco, ECS events and the
// CloudWatch Logs wrappers around them) into pipeline.Events.
//
// # Files
//
// Reader.Files is the one walk (replay uses it too): folders recursively
// in lexical order, symbolic links followed (a link to a folder above it is
// a loop and is not followed; a file reached twice is read once), hidden
// folders not entered, and each thing not read counted by class (see
// IsFileClass). CloudTrail-Digest/ and
// CloudTrail-Insight/ objects, dot files and obviously non-JSON files
// (README.md, *.yaml, anything not starting with '{' or '[') are counted
// as skipped files. Each file is opened plain or gzip, sniffed from its
// magic bytes, never from its name.
//
// A file is cut into records without decoding it whole:
//
//  1. {"Records":[ at the start of a value (CloudTrail S3 objects, which
//     may be hundreds of MB on one line): the object is streamed member
//     by member and the array element by element; memory stays near
//     MaxRecordBytes.
//  2. A top-level JSON array: streamed element by element likewise.
//  3. Any other value: read whole (up to MaxRecordBytes) and decoded.
//     Pretty-printed documents and concatenated documents work. An object
//     larger than that is streamed as in 1, whatever the order of its
//     members: the elements of Records, findings/Findings, events
//     (filter-log-events) and logEvents (CloudWatch Logs) are records,
//     each within the limit. Log events are decoded in batches of up to
//     MaxRecordBytes with the members seen so far (owner, logGroup,
//     logStream) as context; members after a larger array cannot help
//     the batches before them.
//  4. If the first value sat alone on its line, the file is JSON lines
//     and is read line by line from then on, so a damaged line costs
//     only that line.
//
// A record cut short (a truncated line or copy) costs only itself: the
// scanner cuts a value where no value can go on (a '{' where no value may
// start, a line less indented than the level it would be in, a '{' at
// column 0 of a line inside a JSON lines record) and reading resumes at
// the next record. A one-line array ends with its line if that line was
// truncated.
//
// # Records
//
// Decode detects the shape of each document from one decode into a union
// of the top-level members of every format, in this order:
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
// unparsable times, too large, an event time before 2004 or more than a
// day after the run started) is reported through the bad callback with
// file, line and record index, counted by class in Stats.Skipped, and the
// read goes on.
package archive
