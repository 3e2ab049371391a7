package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Store layout (see correlate/state for the kinds):
//
//	w|p <rule id> 0x00 <key>   keyState (JSON): windows (w) or partials/metric clocks (p)
//	b <rule id> 0x00 <key>     metric baseline (JSON)
//	i <incident id>            open incident (JSON)
//	d <rule id> 0x00 <dedup>   incident id
//	m engine                   watermark, clock, incident sequence
func keyStoreKey(rt *ruleRT, key string) []byte {
	return state.Key(rt.kind.storeKind(), rt.r.ID, key)
}

func dedupStoreKey(dkey string) []byte { return state.Key(state.KindDedup, dkey) }

var metaKey = state.Key(state.KindMeta, "engine")

type meta struct {
	Watermark time.Time `json:"wm"`
	Clock     time.Time `json:"clock"`
	IncSeq    uint64    `json:"seq"`
}

// Checkpoint writes all state changed since the last checkpoint in one
// batch.
func (e *Engine) Checkpoint(ctx context.Context) error {
	if !e.durable {
		return nil // ephemeral
	}
	b := e.st.NewBatch()
	if err := e.CheckpointBatch(ctx, b); err != nil {
		b.Cancel()
		return err
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("engine: checkpoint: %w", err)
	}
	e.Committed()
	return nil
}

// Committed tells the engine that the last CheckpointBatch has been
// committed, so that the key states it wrote may be evicted from memory
// without a scratch copy (Options.MemoryBudget). Not calling it is safe:
// they are then copied when evicted.
func (e *Engine) Committed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ks := range e.unsyncedKeys {
		ks.unsynced = false
	}
	e.unsyncedKeys = e.unsyncedKeys[:0]
}

// writeKey adds a key state's records to b.
func (e *Engine) writeKey(b pipeline.StateWriter, ks *keyState) error {
	rt := ks.rt
	v, err := gojson.Marshal(ks)
	if err != nil {
		return fmt.Errorf("engine: encode state of %s: %w", rt.r.ID, err)
	}
	b.Set(keyStoreKey(rt, ks.key), v, rt.ttl)
	return rt.kind.save(e, b, rt, ks)
}

// CheckpointBatch adds all changed state to b (pipeline.Checkpointer), so
// that the Runner commits it atomically with resolver links, source
// positions and the outbox. The caller must commit b; if that fails, the
// engine's state is no longer known to be durable and the caller must
// restart from the previous commit.
func (e *Engine) CheckpointBatch(ctx context.Context, b pipeline.StateWriter) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, k := range e.deadKeys {
		b.Delete(k)
	}
	e.deadKeys = nil
	// Deterministic write order is not needed for correctness, but keys
	// that are dirty and dead in the same interval must end up deleted.
	for ks := range e.dirtyKeys {
		ks.dirty = false
		rt := ks.rt
		if rt.keys[ks.key] != ks {
			continue
		}
		evicted := ks.evicted
		if evicted {
			e.fetch(ks) // from its scratch copy, which stays valid
		}
		if err := e.writeKey(b, ks); err != nil {
			return err
		}
		ks.onDisk = true
		if !ks.unsynced {
			ks.unsynced = true
			e.unsyncedKeys = append(e.unsyncedKeys, ks)
		}
		if evicted {
			e.evict(ks)
		}
	}
	clear(e.dirtyKeys)
	for _, id := range e.deadIncs {
		b.Delete(state.Key(state.KindIncident, id))
	}
	e.deadIncs = nil
	for _, k := range e.deadDedups {
		b.Delete(k)
	}
	e.deadDedups = nil
	for id := range e.dirtyIncs {
		oi := e.incidents[id]
		if oi == nil {
			continue
		}
		v, err := gojson.Marshal(oi)
		if err != nil {
			return fmt.Errorf("engine: encode incident %s: %w", id, err)
		}
		ttl := oi.Expire.Sub(oi.Inc.LastSeen) + e.opts.Lateness + time.Hour
		b.Set(state.Key(state.KindIncident, id), v, ttl)
		dkey := oi.Rule + "\x00" + oi.DedupKey
		if e.dedup[dkey] == id {
			b.Set(dedupStoreKey(dkey), []byte(id), ttl)
		}
	}
	clear(e.dirtyIncs)
	v, err := gojson.Marshal(meta{Watermark: e.wm, Clock: e.clock, IncSeq: e.incSeq})
	if err != nil {
		return fmt.Errorf("engine: encode meta: %w", err)
	}
	// Unchanged, it is not written again: a scale-out instance sends every
	// write to its changelog.
	if !bytes.Equal(v, e.savedMeta) {
		b.Set(metaKey, v, 0)
		e.savedMeta = v
	}
	return nil
}

// Close checkpoints and releases the engine; the store stays open.
func (e *Engine) Close(ctx context.Context) error {
	if err := e.Checkpoint(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, rt := range e.rules {
		clear(rt.keys)
		rt.exp = nil
		clear(rt.open)
	}
	clear(e.incidents)
	clear(e.dedup)
	e.timers = nil
	e.changedKeys = nil
	e.lru, e.memUsed, e.stats.evictedKeys, e.unsyncedKeys = lruList{}, 0, 0, nil
	return nil
}

// load restores state written by an earlier engine. State of rules that no
// longer exist or whose detect section changed (Hash) is deleted.
func (e *Engine) load(ctx context.Context) error {
	if !e.durable {
		return nil // ephemeral
	}
	v, ok, err := e.st.Get(metaKey)
	if err != nil {
		return fmt.Errorf("engine: load: %w", err)
	}
	if ok {
		var m meta
		if err := gojson.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("engine: load meta: %w", err)
		}
		e.wm, e.clock, e.incSeq, e.lastSweep = m.Watermark, m.Clock, m.IncSeq, m.Watermark
	}
	var stale [][]byte
	for _, rt := range e.rules {
		if err := ctx.Err(); err != nil {
			return err
		}
		prefix := state.Key(rt.kind.storeKind(), rt.r.ID, "")
		err := e.st.Iterate(prefix, func(k, v []byte) error {
			ks := &keyState{}
			if err := gojson.Unmarshal(v, ks); err != nil || ks.Hash != rt.r.Hash {
				stale = append(stale, bytes.Clone(k))
				return nil
			}
			ks.key, ks.onDisk = string(k[len(prefix):]), true
			e.addKey(rt, ks)
			return nil
		})
		if err != nil {
			return fmt.Errorf("engine: load %s: %w", rt.r.ID, err)
		}
		if err := rt.kind.load(e, rt, &stale); err != nil {
			return err
		}
		for _, ks := range rt.keys {
			rt.kind.loaded(e, rt, ks, true)
		}
	}
	e.flushExpiry()
	e.enforceBudget()
	var incs []*openInc
	err = e.st.Iterate(state.Key(state.KindIncident), func(k, v []byte) error {
		oi := &openInc{}
		if err := gojson.Unmarshal(v, oi); err != nil {
			stale = append(stale, bytes.Clone(k))
			return nil
		}
		rt := e.byID[oi.Rule]
		if rt == nil || rt.r.Hash != oi.Hash || oi.Inc.Status != pipeline.IncidentOpen {
			stale = append(stale, bytes.Clone(k))
			return nil
		}
		incs = append(incs, oi)
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: load incidents: %w", err)
	}
	slices.SortFunc(incs, func(a, b *openInc) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		if a.Inc.ID < b.Inc.ID {
			return -1
		}
		return 1
	})
	for _, oi := range incs {
		e.incidents[oi.Inc.ID] = oi
		e.incExp.update(oi)
		rt := e.byID[oi.Rule]
		rt.open[oi.GroupKey] = append(rt.open[oi.GroupKey], oi.Inc.ID)
		if !oi.ResolveAt.IsZero() {
			e.addIncTimer(rt, oi)
		}
	}
	dp := state.Key(state.KindDedup)
	err = e.st.Iterate(dp, func(k, v []byte) error {
		id := string(v)
		if e.incidents[id] == nil {
			stale = append(stale, bytes.Clone(k))
			return nil
		}
		e.dedup[string(k[len(dp):])] = id
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: load dedup keys: %w", err)
	}
	if len(stale) > 0 {
		b := e.st.NewBatch()
		for _, k := range stale {
			b.Delete(k)
		}
		if err := b.Commit(); err != nil {
			return fmt.Errorf("engine: drop stale state: %w", err)
		}
		e.log.Info("engine: dropped stale state (rules removed or changed)", "keys", len(stale))
	}
	return nil
}
