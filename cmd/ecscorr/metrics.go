package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ecscorr/ecscorr/pipeline"
)

// metrics are the Prometheus metrics of `ecscorr run` (docs/operations.md
// lists them). Counters the Runner and engine keep are read at scrape time
// from the last snapshot, so the hot path only touches its own counters.
type metrics struct {
	svc *service

	eventsIn     *prometheus.CounterVec
	parseErrors  *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	opened       *prometheus.CounterVec
	changes      *prometheus.CounterVec
	latency      prometheus.Histogram
	reloads      *prometheus.CounterVec
	mu           sync.Mutex
	last         pipeline.RunStats
	lastAt       time.Time
	seenIncident map[string]struct{}
}

func newMetrics(reg *prometheus.Registry, svc *service) *metrics {
	m := &metrics{
		svc: svc,
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_events_received_total", Help: "Events read, per input and source.",
		}, []string{"input", "source"}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_parse_errors_total", Help: "Records an input could not turn into events, per input and reason class.",
		}, []string{"input", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_dead_letters_total", Help: "Records and events written to the dead-letter file, per kind (record, conflicting_duplicate, too_late).",
		}, []string{"kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_events_skipped_total", Help: "Events not applied, per reason (duplicate, conflicting_duplicate, too_late).",
		}, []string{"reason"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_incidents_opened_total", Help: "Incidents opened, per rule and severity.",
		}, []string{"rule", "severity"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_incident_changes_total", Help: "Incident changes (opened, updated, escalated, resolved), per rule and status.",
		}, []string{"rule", "status"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ecscorr_receipt_to_incident_seconds", Help: "Processing time from an event's receipt to the incident change it caused.",
			Buckets: []float64{.001, .0025, .005, .0075, .01, .015, .02, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecscorr_rule_reloads_total", Help: "Rule reloads (SIGHUP), per result.",
		}, []string{"result"}),
		seenIncident: map[string]struct{}{},
	}
	reg.MustRegister(m.eventsIn, m.parseErrors, m.deadLetters, m.skipped, m.opened, m.changes, m.latency, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), m)
	return m
}

var (
	descLate      = prometheus.NewDesc("ecscorr_late_events_total", "Events that arrived after the watermark had passed them (applied out of order).", nil, nil)
	descApplied   = prometheus.NewDesc("ecscorr_events_applied_total", "Events given to the correlator.", nil, nil)
	descCommits   = prometheus.NewDesc("ecscorr_commits_total", "Atomic state commits.", nil, nil)
	descBuffered  = prometheus.NewDesc("ecscorr_reorder_buffered_events", "Events waiting in the reorder buffer for the watermark.", nil, nil)
	descWatermark = prometheus.NewDesc("ecscorr_watermark_seconds", "The event-time watermark (Unix seconds).", nil, nil)
	descLag       = prometheus.NewDesc("ecscorr_watermark_lag_seconds", "Processing time minus the newest event time seen, per source.", []string{"source"}, nil)
	descUnres     = prometheus.NewDesc("ecscorr_unresolved_events_total", "Runtime and metric events that could not be linked to a task, per source.", []string{"source"}, nil)
	descKeys      = prometheus.NewDesc("ecscorr_state_keys", "Correlation key states, per rule.", []string{"rule"}, nil)
	descEvicted   = prometheus.NewDesc("ecscorr_state_evicted_keys", "Key states held in Badger for the memory budget.", nil, nil)
	descOpen      = prometheus.NewDesc("ecscorr_open_incidents", "Open incidents.", nil, nil)
	descDepth     = prometheus.NewDesc("ecscorr_outbox_depth", "Incident changes waiting for a sink.", []string{"sink"}, nil)
	descDead      = prometheus.NewDesc("ecscorr_outbox_dead", "Incident changes dead-lettered by a sink and kept (ecscorr outbox list --dead).", []string{"sink"}, nil)
	descOldest    = prometheus.NewDesc("ecscorr_outbox_oldest_age_seconds", "Age of the oldest change waiting for a sink.", []string{"sink"}, nil)
	descDelivered = prometheus.NewDesc("ecscorr_deliveries_total", "Incident changes delivered, per sink.", []string{"sink"}, nil)
	descRetries   = prometheus.NewDesc("ecscorr_delivery_failures_total", "Failed delivery attempts (retried), per sink.", []string{"sink"}, nil)
	descSinkDead  = prometheus.NewDesc("ecscorr_delivery_dead_letters_total", "Incident changes a sink dead-lettered in this process.", []string{"sink"}, nil)
	descReady     = prometheus.NewDesc("ecscorr_input_ready", "1 while an input is connected and able to receive.", []string{"input"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLate, descApplied, descCommits, descBuffered, descWatermark, descLag, descUnres, descKeys,
		descEvicted, descOpen, descDepth, descDead, descOldest, descDelivered, descRetries, descSinkDead, descReady} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	st := m.last
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(st.Late))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.CounterValue, float64(st.Applied))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(st.Commits))
	ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(st.Buffered))
	if !st.Watermark.IsZero() {
		ch <- prometheus.MustNewConstMetric(descWatermark, prometheus.GaugeValue, float64(st.Watermark.UnixNano())/1e9)
	}
	now := time.Now()
	for src, t := range st.Newest {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, now.Sub(t).Seconds(), string(src))
	}
	for src, n := range st.Unresolved {
		ch <- prometheus.MustNewConstMetric(descUnres, prometheus.CounterValue, float64(n), string(src))
	}
	if eng := m.svc.engine(); eng != nil {
		es := eng.Stats()
		for id, n := range es.KeysByRule {
			ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(n), id)
		}
		ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.GaugeValue, float64(es.EvictedKeys))
		ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(es.OpenIncidents))
	}
	m.svc.mu.Lock()
	r := m.svc.runner
	m.svc.mu.Unlock()
	if r != nil {
		for name, ss := range r.SinkStats() {
			ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(ss.Depth), name)
			ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(ss.Dead), name)
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, ss.OldestAge.Seconds(), name)
			ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(ss.Delivered), name)
			ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(ss.Retries), name)
			ch <- prometheus.MustNewConstMetric(descSinkDead, prometheus.CounterValue, float64(ss.DeadLetters), name)
		}
	}
	for _, in := range m.svc.ins {
		v := 1.0
		if rd, ok := in.(pipeline.Readiness); ok && rd.Ready() != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, v, in.Name())
	}
}

// progress keeps the Runner's counters for scrapes (called in its loop).
func (m *metrics) progress(st pipeline.RunStats) {
	m.mu.Lock()
	prev := m.last
	m.last, m.lastAt = st, time.Now()
	m.mu.Unlock()
	if d := st.Duplicates - prev.Duplicates; d > 0 {
		m.skipped.WithLabelValues(string(pipeline.SkipDuplicate)).Add(float64(d))
	}
	if d := st.Conflicts - prev.Conflicts; d > 0 {
		m.skipped.WithLabelValues(string(pipeline.SkipConflict)).Add(float64(d))
	}
	if d := st.TooLate - prev.TooLate; d > 0 {
		m.skipped.WithLabelValues(string(pipeline.SkipTooLate)).Add(float64(d))
	}
}

// incidents counts incident changes and the receipt → incident latency
// (called in the Runner's loop).
func (m *metrics) incidents(ev *pipeline.Event, incs []pipeline.Incident) {
	now := time.Now()
	for _, inc := range incs {
		m.changes.WithLabelValues(inc.Rule, string(inc.Status)).Inc()
		if inc.Count == 1 && inc.Status == pipeline.IncidentOpen {
			m.mu.Lock()
			_, dup := m.seenIncident[inc.ID]
			if !dup {
				if len(m.seenIncident) > 100_000 {
					clear(m.seenIncident)
				}
				m.seenIncident[inc.ID] = struct{}{}
			}
			m.mu.Unlock()
			if !dup {
				m.opened.WithLabelValues(inc.Rule, inc.Severity.String()).Inc()
			}
		}
		if ev != nil && !ev.Received.IsZero() {
			m.latency.Observe(now.Sub(ev.Received).Seconds())
		}
	}
}

// countInput wraps an input so that its events are counted per source.
func (m *metrics) countInput(in pipeline.Input) pipeline.Input {
	return &countedInput{Input: in, m: m}
}

type countedInput struct {
	pipeline.Input
	m *metrics
}

func (c *countedInput) Read(ctx context.Context) (pipeline.Batch, pipeline.AckFunc, error) {
	b, ack, err := c.Input.Read(ctx)
	var last pipeline.Source
	var n int
	flush := func() {
		if n > 0 {
			c.m.eventsIn.WithLabelValues(c.Name(), string(last)).Add(float64(n))
		}
	}
	for _, ev := range b.Events {
		if ev.Source != last {
			flush()
			last, n = ev.Source, 0
		}
		n++
	}
	flush()
	return b, ack, err
}

// Ready forwards the wrapped input's readiness.
func (c *countedInput) Ready() error {
	if rd, ok := c.Input.(pipeline.Readiness); ok {
		return rd.Ready()
	}
	return nil
}

// Streams forwards the wrapped input's streams (pipeline.StreamedInput).
func (c *countedInput) Streams() []string {
	if s, ok := c.Input.(pipeline.StreamedInput); ok {
		return s.Streams()
	}
	return nil
}

// Stream forwards the wrapped input's streams (pipeline.StreamedInput).
func (c *countedInput) Stream(ev *pipeline.Event) (string, bool) {
	if s, ok := c.Input.(pipeline.StreamedInput); ok {
		return s.Stream(ev)
	}
	return "", false
}
