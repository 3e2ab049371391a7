package engine

import (
	"bytes"
	"fmt"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ecscorr/ecscorr/correlate/state"
	"github.com/ecscorr/ecscorr/pipeline"
)

// Memory budget (Options.MemoryBudget). Key states are kept in one LRU
// list across rules with an estimated size each. Past the budget, the
// least recently used are evicted: their fields are dropped and only a
// stub stays in the rule's key map (key, expiry, flags: about 200 bytes),
// so that lookups, the key cap, the expiry heap and timers work as before;
// the first access (an event or a timer) reads the state back.
//
// Crash consistency: the state records that a restart reads (w|p|b) are
// written only by CheckpointBatch, never by eviction. A key whose newest
// state is already in a committed checkpoint (not dirty, and no
// checkpoint written since is still waiting for Committed) is evicted
// without writing: it is read back from its record. Any other key is
// spilled first to a scratch area (m spill 0x00 <record key>), which
// only this process reads and which New drops: a crash loses nothing a
// checkpoint had not already made durable, and never makes a restart see
// state newer than its checkpoint. A checkpoint reads spilled dirty keys
// back to write them.

// spillPrefix namespaces the scratch copies of evicted key states.
var spillPrefix = state.Key(state.KindMeta, "spill", "")

func spillKey(k []byte) []byte {
	out := make([]byte, 0, len(spillPrefix)+len(k))
	return append(append(out, spillPrefix...), k...)
}

// dropSpill deletes the scratch copies of an earlier process: they are
// never read (a batch, not Badger's DropPrefix, which stalls the store).
func dropSpill(st *state.Store) error {
	b := st.NewBatch()
	err := st.Iterate(spillPrefix, func(k, _ []byte) error {
		b.Delete(bytes.Clone(k))
		return nil
	})
	if err == nil {
		err = b.Commit()
	} else {
		b.Cancel()
	}
	if err != nil {
		return fmt.Errorf("engine: drop scratch state: %w", err)
	}
	return nil
}

// spillWriter writes a key state's records under spillPrefix.
type spillWriter struct{ b *state.Batch }

// Scratch copies have no TTL: New drops them all, and a dropped key's copy
// is deleted with the next spill.
func (w spillWriter) Set(key, val []byte, _ time.Duration) { w.b.Set(spillKey(key), val, 0) }
func (w spillWriter) Delete(key []byte)                    { w.b.Delete(spillKey(key)) }

// lruList is an intrusive list of the key states in memory, most recently
// used first.
type lruList struct{ head, tail *keyState }

func (l *lruList) remove(ks *keyState) {
	if ks.lprev != nil {
		ks.lprev.lnext = ks.lnext
	} else if l.head == ks {
		l.head = ks.lnext
	}
	if ks.lnext != nil {
		ks.lnext.lprev = ks.lprev
	} else if l.tail == ks {
		l.tail = ks.lprev
	}
	ks.lprev, ks.lnext = nil, nil
}

func (l *lruList) pushFront(ks *keyState) {
	ks.lnext = l.head
	if l.head != nil {
		l.head.lprev = ks
	}
	l.head = ks
	if l.tail == nil {
		l.tail = ks
	}
}

func (e *Engine) budgeted() bool { return e.opts.MemoryBudget > 0 }

// use makes a key state ready to be read and changed by an event or a
// timer: read back if evicted, queued for its expiry and size refresh.
func (e *Engine) use(ks *keyState) {
	if ks.evicted {
		e.fetch(ks)
	}
	if e.budgeted() {
		ks.spillValid = false // it may change now
		if e.lru.head != ks {
			e.lru.remove(ks)
			e.lru.pushFront(ks)
		}
	}
	e.changed(ks)
}

// fetch reads an evicted key state back. A record that cannot be read is
// counted and logged, and the key starts empty: the loss is visible.
func (e *Engine) fetch(ks *keyState) {
	rt := ks.rt
	get := e.st.Get
	if ks.spilled {
		get = func(k []byte) ([]byte, bool, error) { return e.st.Get(spillKey(k)) }
	}
	ks.evicted = false
	e.stats.evictedKeys--
	ks.spillValid = ks.spilled
	err := func() error {
		v, ok, err := get(keyStoreKey(rt, ks.key))
		if err != nil {
			return err
		}
		if !ok {
			// Its record was written (onDisk): it expired in the store
			// (TTLs run on the wall clock) or was lost.
			return fmt.Errorf("no record")
		}
		ks.seenIx = nil // indexes the Seen read below once rebuilt
		if err := gojson.Unmarshal(v, ks); err != nil {
			return err
		}
		return rt.kind.fetch(e, rt, ks, get)
	}()
	if err != nil {
		e.stats.fetchErrors++
		e.logOnce("fetch:"+rt.r.ID, "evicted key state could not be read back; the key starts empty", "rule", rt.r.ID, "key", ks.key, "err", err)
		ks.Hash, ks.spillValid = rt.r.Hash, false
	}
	rt.kind.loaded(e, rt, ks, false)
	ks.size = ks.memSize()
	e.memUsed += ks.size
	e.lru.pushFront(ks)
}

// account refreshes the size of a key state that an event or timer used.
func (e *Engine) account(ks *keyState) {
	if !e.budgeted() || ks.evicted {
		return
	}
	n := ks.memSize()
	e.memUsed += n - ks.size
	ks.size = n
}

// forgetMem takes a dropped key out of the budget.
func (e *Engine) forgetMem(ks *keyState) {
	if !e.budgeted() {
		return
	}
	if ks.evicted {
		e.stats.evictedKeys--
		if ks.spilled {
			e.spillDead = append(e.spillDead, spillKey(keyStoreKey(ks.rt, ks.key)))
		}
		return
	}
	e.memUsed -= ks.size
	ks.size = 0
	e.lru.remove(ks)
}

// enforceBudget evicts the least recently used key states until the
// estimate is 7/8 of the budget. Keys that need a scratch copy are written
// in one batch first; if that fails they stay in memory (logged).
func (e *Engine) enforceBudget() {
	if !e.budgeted() || e.memUsed <= e.opts.MemoryBudget {
		return
	}
	target := e.opts.MemoryBudget - e.opts.MemoryBudget/8
	var victims []*keyState
	var b *state.Batch
	if len(e.spillDead) > 0 {
		b = e.st.NewBatch()
		for _, k := range e.spillDead {
			b.Delete(k)
		}
		e.spillDead = e.spillDead[:0]
	}
	free := e.memUsed
	for ks := e.lru.tail; ks != nil && free > target; ks = ks.lprev {
		if ks.queued {
			continue // waits for its expiry refresh (not at the end of an event)
		}
		if e.needsSpill(ks) && !ks.spillValid {
			if b == nil {
				b = e.st.NewBatch()
			}
			if err := e.writeKey(spillWriter{b}, ks); err != nil {
				e.stats.fetchErrors++
				e.logOnce("spill:"+ks.rt.r.ID, "key state could not be encoded for eviction; kept in memory", "rule", ks.rt.r.ID, "err", err)
				continue
			}
		}
		victims = append(victims, ks)
		free -= ks.size
	}
	if b != nil {
		if err := b.Commit(); err != nil {
			e.stats.fetchErrors++
			e.logOnce("spill", "evicted key states could not be written; kept in memory over the budget", "err", err)
			return
		}
	}
	for _, ks := range victims {
		e.evict(ks)
	}
}

// needsSpill: the key's records in the store are not (known to be) its
// current state.
func (e *Engine) needsSpill(ks *keyState) bool {
	return !e.durable || ks.dirty || ks.unsynced || !ks.onDisk
}

// evict drops a key state's fields, keeping the stub.
func (e *Engine) evict(ks *keyState) {
	e.lru.remove(ks)
	e.memUsed -= ks.size
	spilled := e.needsSpill(ks)
	*ks = keyState{key: ks.key, rt: ks.rt, dirty: ks.dirty, unsynced: ks.unsynced, onDisk: ks.onDisk, hidx: ks.hidx, expAt: ks.expAt,
		evicted: true, spilled: spilled, spillValid: spilled}
	e.stats.evictedKeys++
}

// memSize estimates the bytes a key state holds (Go headers, strings,
// slices; maps of fields roughly).
func (ks *keyState) memSize() int64 {
	n := 240 + 2*len(ks.key)
	for _, v := range ks.Vals {
		n += 16 + len(v)
	}
	ref := func(r *pipeline.EventRef) int { return 80 + len(r.ID) + len(r.Type) + len(r.Step) }
	for i := range ks.Win {
		n += 24 + len(ks.Win[i].S) + ref(&ks.Win[i].Ref)
	}
	n += 32 * len(ks.Seen)
	for _, p := range ks.Parts {
		if p != nil {
			n += 96
			for _, r := range p.Recs {
				n += 16 + len(r.As) + r.Rec.memSize()
			}
		}
	}
	for _, l := range ks.Temp {
		for i := range l {
			n += 24 + ref(&l[i].Ref) + l[i].Rec.memSize()
		}
	}
	if m := ks.Met; m != nil {
		n += 200 + m.BreachRec.memSize()
		for i := range m.BreachRefs {
			n += ref(&m.BreachRefs[i])
		}
		for _, j := range m.Joins {
			n += 8 + j.memSize()
		}
		for _, id := range m.Firing {
			n += 16 + len(id)
		}
		if b := m.Base; b != nil {
			n += 64 + 40*len(b.Buckets) + 24*(len(b.Res)+len(b.sorted))
		}
	}
	return int64(n)
}

func (r *evRec) memSize() int {
	if r == nil {
		return 0
	}
	n := 300 + len(r.Signal) + len(r.ID) + len(r.Type) + len(r.Raw)
	for k, v := range r.Fields {
		n += 48 + len(k)
		if s, ok := v.(string); ok {
			n += len(s)
		}
	}
	return n
}
