package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrPermanent marks a delivery error that retrying cannot fix (a payload
// the service refuses, an archived channel, a revoked token): the incident
// is dead-lettered with the reason at once. Wrap it: fmt.Errorf("%w: ...",
// ErrPermanent) or Permanent(err).
var ErrPermanent = errors.New("permanent delivery failure")

// Permanent marks err as permanent.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// RetryAfterError asks for the next attempt no sooner than After (Slack's
// 429 Retry-After, a throttled AWS call).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// BatchError reports a delivery that partly failed: the incidents not in
// Failed were delivered.
type BatchError struct {
	Failed map[string]error // incident id → why
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("%d incidents of the batch failed", len(e.Failed))
}

// DeliveryPolicy says how one stream sink is drained.
type DeliveryPolicy struct {
	// Type is the sink's kind (slack, securityhub, ...): a rule's route
	// names sinks by name or by type.
	Type string
	// AllRoutes makes the sink take every incident whatever its route (an
	// archive: a JSONL file, a Kafka topic).
	AllRoutes bool
	// MinSeverity: incidents below it never reach the sink.
	MinSeverity Severity
	// MaxAttempts before an incident is dead-lettered (default 10).
	MaxAttempts int
	// BackoffBase and BackoffMax bound the exponential backoff between
	// attempts (defaults 1s and 5m); each wait is jittered by ±20 %.
	BackoffBase, BackoffMax time.Duration
	// Rate limits Deliver calls per second (0: unlimited) with Burst.
	Rate  float64
	Burst int
	// BatchSize is the most incidents one Deliver call gets (default 1).
	BatchSize int
}

func (p *DeliveryPolicy) defaults() {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 10
	}
	if p.BackoffBase <= 0 {
		p.BackoffBase = time.Second
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = 5 * time.Minute
	}
	if p.BatchSize <= 0 {
		p.BatchSize = 1
	}
	if p.Burst <= 0 {
		p.Burst = 1
	}
}

// OutboxEntry is one incident change waiting for one sink.
type OutboxEntry struct {
	Seq         uint64    `json:"seq"`
	Sink        string    `json:"sink"`
	Incident    Incident  `json:"incident"`
	Enqueued    time.Time `json:"enqueued"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Dead        bool      `json:"dead,omitempty"`
}

func outboxKey(sink string, seq uint64) []byte {
	k := FamilyKey(FamilyOutbox, sink, "")
	return binary.BigEndian.AppendUint64(k, seq)
}

func outboxPrefix(sink string) []byte {
	if sink == "" {
		return []byte{FamilyOutbox}
	}
	return FamilyKey(FamilyOutbox, sink, "")
}

// SinkStats counts the delivery to one sink.
type SinkStats struct {
	Depth       int           // entries waiting (not dead)
	Dead        int           // entries dead-lettered and kept
	OldestAge   time.Duration // age of the oldest waiting entry
	Delivered   uint64
	Retries     uint64
	DeadLetters uint64 // entries dead-lettered by this process
}

// drainer delivers one stream sink's outbox entries, in order per
// incident, with retries, backoff, a rate limit and dead letters.
type drainer struct {
	sink  Sink
	pol   DeliveryPolicy
	store StateStore // nil: the outbox lives in memory only
	log   *slog.Logger
	now   func() time.Time
	lim   *rate.Limiter

	mu    sync.Mutex
	queue []*OutboxEntry // waiting, in seq order
	dead  int
	stats SinkStats
	wake  chan struct{}
}

func newDrainer(s Sink, pol DeliveryPolicy, store StateStore, log *slog.Logger, now func() time.Time) *drainer {
	pol.defaults()
	d := &drainer{sink: s, pol: pol, store: store, log: log, now: now, wake: make(chan struct{}, 1)}
	if pol.Rate > 0 {
		d.lim = rate.NewLimiter(rate.Limit(pol.Rate), pol.Burst)
	}
	return d
}

// load takes in what an earlier run left.
func (d *drainer) load() error {
	if d.store == nil {
		return nil
	}
	var queue []*OutboxEntry
	dead := 0
	err := d.store.Iterate(outboxPrefix(d.sink.Name()), func(k, v []byte) error {
		e := &OutboxEntry{}
		if err := json.Unmarshal(v, e); err != nil {
			return fmt.Errorf("outbox entry %q: %w", k, err)
		}
		if e.Dead {
			dead++
		} else {
			queue = append(queue, e)
		}
		return nil
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queue = append(queue, d.queue...)
	d.dead += dead
	return err
}

// accepts says whether inc goes to this sink: its route names the sink or
// its type (or it has none, or the sink takes all routes) and its severity
// is high enough.
func (d *drainer) accepts(inc *Incident) bool {
	if inc.Severity < d.pol.MinSeverity {
		return false
	}
	return d.pol.AllRoutes || len(inc.Route) == 0 || slices.Contains(inc.Route, d.sink.Name()) ||
		(d.pol.Type != "" && slices.Contains(inc.Route, d.pol.Type))
}

// enqueue adds entries committed to the store (or, without one, just made).
func (d *drainer) enqueue(es []*OutboxEntry) {
	if len(es) == 0 {
		return
	}
	d.mu.Lock()
	d.queue = append(d.queue, es...)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run delivers until ctx is done.
func (d *drainer) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := d.deliverDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// deliverDue delivers every entry that is due, batch by batch, and returns
// how long until the next one is (-1: none waiting).
func (d *drainer) deliverDue(ctx context.Context) time.Duration {
	for ctx.Err() == nil {
		batch, next := d.pick()
		if len(batch) == 0 {
			return next
		}
		if d.lim != nil {
			if err := d.lim.Wait(ctx); err != nil {
				return -1
			}
		}
		incs := make([]Incident, len(batch))
		for i, e := range batch {
			incs[i] = e.Incident
		}
		err := d.sink.Deliver(ctx, incs)
		if ctx.Err() != nil && err != nil {
			return -1 // shutting down: the entries stay as they were
		}
		d.settle(ctx, batch, err)
	}
	return -1
}

// pick returns the next batch of due entries, the oldest first, at most one
// per incident and none behind an earlier waiting entry of its incident;
// next is how long until the earliest entry not due is.
func (d *drainer) pick() (batch []*OutboxEntry, next time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	next = -1
	blocked := map[string]bool{}
	for _, e := range d.queue {
		id := e.Incident.ID
		if blocked[id] {
			continue
		}
		blocked[id] = true // later changes of this incident wait for this one
		if e.NextAttempt.After(now) {
			if w := e.NextAttempt.Sub(now); next < 0 || w < next {
				next = w
			}
			continue
		}
		batch = append(batch, e)
		if len(batch) == d.pol.BatchSize {
			break
		}
	}
	return batch, next
}

// settle records the outcome of one delivery: delivered entries leave the
// outbox; failed ones are retried later or dead-lettered.
func (d *drainer) settle(ctx context.Context, batch []*OutboxEntry, err error) {
	var be *BatchError
	errors.As(err, &be)
	now := d.now()
	var done, changed []*OutboxEntry
	for _, e := range batch {
		eerr := err
		if be != nil {
			eerr = be.Failed[e.Incident.ID]
		}
		if eerr == nil {
			done = append(done, e)
			continue
		}
		e.Attempts++
		e.LastError = eerr.Error()
		switch {
		case errors.Is(eerr, ErrPermanent):
			e.Dead = true
		case e.Attempts >= d.pol.MaxAttempts:
			e.Dead = true
			e.LastError = fmt.Sprintf("after %d attempts: %s", e.Attempts, e.LastError)
		default:
			wait := backoff(d.pol, e.Attempts)
			var ra *RetryAfterError
			if errors.As(eerr, &ra) && ra.After > wait {
				wait = ra.After
			}
			e.NextAttempt = now.Add(wait)
		}
		changed = append(changed, e)
	}
	if d.store != nil && len(done)+len(changed) > 0 {
		txn := d.store.Begin()
		for _, e := range done {
			txn.Delete(outboxKey(e.Sink, e.Seq))
		}
		for _, e := range changed {
			v, merr := json.Marshal(e)
			if merr != nil {
				txn.Cancel()
				d.log.Error("outbox: encoding entry", "sink", e.Sink, "incident", e.Incident.ID, "err", merr)
				return
			}
			txn.Set(outboxKey(e.Sink, e.Seq), v, 0)
		}
		if cerr := txn.Commit(); cerr != nil {
			// The entries stay as they were in the store: a restart
			// delivers again (at least once).
			d.log.Error("outbox: recording a delivery", "sink", d.sink.Name(), "err", cerr)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	gone := make(map[*OutboxEntry]bool, len(done))
	for _, e := range done {
		gone[e] = true
	}
	for _, e := range changed {
		if e.Dead {
			gone[e] = true
			d.dead++
			d.stats.DeadLetters++
			d.log.Warn("outbox: incident dead-lettered", "sink", d.sink.Name(), "incident", e.Incident.ID, "rule", e.Incident.Rule, "attempts", e.Attempts, "reason", e.LastError)
		} else {
			d.stats.Retries++
			d.log.Info("outbox: delivery failed, will retry", "sink", d.sink.Name(), "incident", e.Incident.ID, "attempt", e.Attempts, "next", e.NextAttempt, "err", e.LastError)
		}
	}
	d.stats.Delivered += uint64(len(done))
	d.queue = slices.DeleteFunc(d.queue, func(e *OutboxEntry) bool { return gone[e] })
	_ = ctx
}

// backoff is base·2^(attempt−1), at most max, jittered by ±20 %.
func backoff(p DeliveryPolicy, attempt int) time.Duration {
	d := p.BackoffBase
	for i := 1; i < attempt && d < p.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.BackoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Stats returns the sink's counters.
func (d *drainer) Stats() SinkStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Depth, s.Dead = len(d.queue), d.dead
	if len(d.queue) > 0 {
		s.OldestAge = d.now().Sub(d.queue[0].Enqueued)
	}
	return s
}

// pending reports whether entries wait that are due now or later.
func (d *drainer) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queue)
}

// ListOutbox returns the entries of sink ("" for every sink) in the store,
// waiting ones or, with dead, the dead-lettered ones.
func ListOutbox(st StateStore, sink string, dead bool) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := st.Iterate(outboxPrefix(sink), func(k, v []byte) error {
		var e OutboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("outbox entry %q: %w", k, err)
		}
		if e.Dead == dead {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// RetryOutbox makes the dead-lettered entries of sink ("" for all) wait
// for delivery again, from their first attempt; it returns how many.
func RetryOutbox(st StateStore, sink string) (int, error) {
	dead, err := ListOutbox(st, sink, true)
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	txn := st.Begin()
	for _, e := range dead {
		e.Dead, e.Attempts, e.NextAttempt = false, 0, time.Time{}
		v, err := json.Marshal(e)
		if err != nil {
			txn.Cancel()
			return 0, err
		}
		txn.Set(outboxKey(e.Sink, e.Seq), v, 0)
	}
	return len(dead), txn.Commit()
}

// DropOutbox deletes the entries of sink ("" for all): the dead-lettered
// ones, or with dead false the waiting ones. It returns how many.
func DropOutbox(st StateStore, sink string, dead bool) (int, error) {
	es, err := ListOutbox(st, sink, dead)
	if err != nil || len(es) == 0 {
		return 0, err
	}
	txn := st.Begin()
	for _, e := range es {
		txn.Delete(outboxKey(e.Sink, e.Seq))
	}
	return len(es), txn.Commit()
}
