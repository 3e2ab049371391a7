package rule

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// thresholdLeaky reads `leaky: {capacity, leakspeed}`, which replaces the
// window and the aggregate of a threshold.
func (l *loader) thresholdLeaky(c *ruleCtx, m *mapNode, n *yaml.Node, th *Threshold) {
	f := c.f
	for _, k := range []string{"window", "count", "distinct", "sum", "avg", "after_fire"} {
		if m.has(k) {
			l.errf(f, m.keys[k], "threshold: leaky replaces window, count/distinct/sum/avg and after_fire (an overflowing bucket is emptied); do not combine %s with it", k)
			c.ok = false
		}
	}
	lm, ok := l.mapping(f, n, "threshold.leaky", "capacity", "leakspeed")
	if !ok {
		c.ok = false
		return
	}
	lk := &Leaky{}
	if cn := lm.get("capacity"); cn == nil {
		l.errf(f, n, "threshold.leaky: missing capacity")
		c.ok = false
	} else if v, ok := l.integer(f, cn, "threshold.leaky.capacity", 1); ok {
		lk.Capacity = v
	} else {
		c.ok = false
	}
	if sn := lm.get("leakspeed"); sn == nil {
		l.errf(f, n, "threshold.leaky: missing leakspeed")
		c.ok = false
	} else if d, ok := l.duration(f, sn, "threshold.leaky.leakspeed"); ok {
		if d <= 0 {
			l.errf(f, sn, "threshold.leaky.leakspeed must be > 0")
			c.ok = false
		}
		lk.LeakSpeed = d
	} else {
		c.ok = false
	}
	if !c.ok {
		return
	}
	th.Leaky = lk
	th.Agg = AggCount
	th.Window = lk.LeakSpeed * time.Duration(lk.Capacity)
	if th.Window > l.opts.MaxRetention {
		l.errf(f, n, "threshold.leaky: capacity × leakspeed = %s exceeds the retention limit %s", fmtDur(th.Window), fmtDur(l.opts.MaxRetention))
		c.ok = false
	}
	c.r.Retention = th.Window
}
