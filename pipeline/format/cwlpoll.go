package format

import "github.com/ecscorr/ecscorr/pipeline"

// LogGroupContext is what a polling reader (FilterLogEvents) knows about
// the events of one log group: the account and region of its ARN, and the
// Container Insights cluster its name holds. It plays the part a
// subscription payload's owner and logGroup play in SubscriptionContext.
func LogGroupContext(owner, region, logGroup string) *WrapContext {
	return &WrapContext{owner: owner, region: region, cluster: clusterFromLogGroup(logGroup)}
}

// LogMessage decodes one log event's message (its text, not a JSON string)
// with wc as context (nil: none), exactly as the messages of a
// subscription payload are decoded.
func (d *Decoder) LogMessage(msg []byte, pos pipeline.Position, wc *WrapContext) {
	if wc == nil {
		wc = &WrapContext{}
	}
	d.decode(msg, pos, wc, 1)
}
