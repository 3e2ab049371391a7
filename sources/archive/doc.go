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
// Each record is decoded by package pipeline/format, which knows every
// log format; its Decoder counts and reports the records it skips.
package archive
