package engine

import "time"

func (e *Engine) onTemporal(rt *ruleRT, key string, vals []string, rh *ruleHits) {}
func (e *Engine) onMetric(rt *ruleRT, key string, vals []string, rh *ruleHits)   {}
func (e *Engine) tempTimer(rt *ruleRT, ks *keyState, at time.Time)               {}

type tempEntry struct{ T time.Time }
type metricState struct{}
