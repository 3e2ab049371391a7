// Package cwlogs is the cloudwatch_logs input of `ecscorr run`: Container
// Insights performance events (EMF: Type Task, Container, Service,
// Cluster, ...) read live from the log groups
// /aws/ecs/containerinsights/<cluster>/performance of listed clusters, or
// of all of them.
//
// # Reading
//
// The log groups are found with DescribeLogGroups (prefix
// /aws/ecs/containerinsights/, names ending in /performance), listed again
// every Relist so that new clusters join; a group that appears after the
// first listing is read from its creation, one present at the first
// listing from Start back.
//
// Each group is read with FilterLogEvents over the whole group, not
// GetLogEvents per stream: Container Insights writes one stream per task
// (Fargate) or container instance (EC2), so a cluster has hundreds of
// streams, most writing one minute's events at a time; one FilterLogEvents
// query returns all of them, interleaved in timestamp order, in pages of
// up to 10,000 events or 1 MB, where GetLogEvents would cost a request per
// stream and poll (plus DescribeLogStreams to find new ones) for a page of
// a few events each. Requests are paced by a limiter (Rate, default 5/s,
// FilterLogEvents' quota per account and region) that every SDK attempt
// passes; throttling and server errors are retried by the SDK's retryer
// and then by the input, with jittered exponential backoff, without end:
// nothing is skipped.
//
// # Position
//
// A poll of a group starts Lookback (default 1 min) before the newest
// event read there, so that a stream whose events are ingested later than
// the others' still has them read. What was read is known from the
// per-stream position: for each stream with an event within the lookback,
// its newest timestamp and the ids of the events read at that timestamp
// (FilterLogEvents returns a stream's events in timestamp order, so the
// rest of a timestamp is exactly the ids not kept; events with equal
// timestamps at a page or restart boundary are neither lost nor doubled).
// Streams idle for longer than the lookback are dropped from it: no later
// query reaches their events again. The newest timestamp of a group is
// never taken past an event's ingestion time, so one agent with a clock
// ahead does not hide the other streams' events.
//
// Batch.Position encodes all of it, compactly and deterministically:
//
//	{"v":1,"g":{"<group>":{"c":<newest ms>,"f":<floor ms>,"s":{"<stream>":[<ts ms>,"<event id>",...]}}}}
//
// A restart Opened with it re-reads only the lookback and hands out only
// what was not read; one batch is one page. A nack makes the next Read
// start again from the last acknowledged position.
//
// Each message is decoded by format.Decoder.LogMessage with the log
// group's context (account and region from its ARN, cluster from its
// name, which Container events lack); its position is
// cwl://<group>/<stream>#<event id>. A message that does not decode goes
// to Bad with that position and the rest goes on.
//
// Known limits: an event ingested more than Lookback after its timestamp
// (or written by an agent whose clock is that far behind) is not read; a
// stream's events written out of timestamp order are read up to the
// newest timestamp only.
package cwlogs
