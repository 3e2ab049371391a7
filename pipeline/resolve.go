package pipeline

import (
	"context"
	"sync"
	"time"
)

// ContainerMap reads the container id → task ARN links persisted by
// earlier runs, so that a restart keeps resolving Falco alerts. The Badger
// state store implements it. The resolver also keeps task ARN → task
// definition ARN links in it, under ids prefixed with "taskdef:". New links
// are written by CheckpointBatch, in the Runner's commit.
type ContainerMap interface {
	GetContainer(ctx context.Context, containerID string) (string, bool, error)
}

// LinkTTL is how long a persisted container or task definition link lives.
const LinkTTL = 7 * 24 * time.Hour

// Resolver links events to their ECS task. It learns container id → task
// ARN from events that carry both (ECS Task State Change, Falco alerts with
// the com.amazonaws.ecs.task-arn label) and fills the task ARN of events
// that only carry a container id. It also completes entities from the task
// ARN (cluster, account, region).
//
// Containers are keyed by the 12-character short id that Falco reports; ECS
// reports the full 64-character runtime id.
type Resolver struct {
	mu      sync.Mutex
	byShort map[string]string
	taskDef map[string]string // task ARN → task definition ARN
	pending map[string]string // links not yet committed
	store   ContainerMap
	max     int
	// Learned and Resolved count links learned and events resolved through them.
	Learned, Resolved uint64
}

// NewResolver returns a resolver holding at most max links in memory (0
// means 1,000,000); store may be nil.
func NewResolver(store ContainerMap, max int) *Resolver {
	if max <= 0 {
		max = 1_000_000
	}
	return &Resolver{byShort: make(map[string]string), taskDef: make(map[string]string), pending: make(map[string]string), store: store, max: max}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Learn records that the given container ids belong to taskARN.
func (r *Resolver) Learn(ctx context.Context, taskARN string, containerIDs ...string) error {
	if taskARN == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range containerIDs {
		if len(c) < 12 || c == "host" {
			continue
		}
		s := shortID(c)
		if r.byShort[s] == taskARN {
			continue
		}
		if len(r.byShort) >= r.max {
			// Drop an arbitrary link rather than grow without bound; the
			// store still has it.
			for k := range r.byShort {
				delete(r.byShort, k)
				break
			}
		}
		r.byShort[s] = taskARN
		r.Learned++
		if r.store != nil {
			r.pending[s] = taskARN
		}
	}
	return nil
}

// CheckpointBatch writes the links learned since the last call into w
// (pipeline.Checkpointer): they commit with the engine state that used them.
func (r *Resolver) CheckpointBatch(ctx context.Context, w StateWriter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	for id, v := range r.pending {
		w.Set(FamilyKey(FamilyContainer, id), []byte(v), LinkTTL)
	}
	clear(r.pending)
	return nil
}

// Resolve fills ev.Entity from what the resolver knows and learns from ev.
// extraContainers are further container ids that belong to ev's task (the
// containers of an ECS Task State Change).
func (r *Resolver) Resolve(ctx context.Context, ev *Event, extraContainers ...string) error {
	e := &ev.Entity
	if e.TaskARN != "" {
		if err := r.LearnEvent(ctx, ev, extraContainers...); err != nil {
			return err
		}
	} else if e.ContainerID != "" && e.ContainerID != "host" {
		s := shortID(e.ContainerID)
		r.mu.Lock()
		arn, ok := r.byShort[s]
		if !ok {
			arn, ok = r.pending[s]
		}
		r.mu.Unlock()
		if !ok && r.store != nil {
			var err error
			arn, ok, err = r.store.GetContainer(ctx, s)
			if err != nil {
				return err
			}
		}
		if ok {
			e.TaskARN = arn
			r.mu.Lock()
			r.Resolved++
			r.mu.Unlock()
		}
	}
	if e.TaskARN != "" && e.TaskDefinitionARN == "" {
		td, err := r.lookupTaskDef(ctx, e.TaskARN)
		if err != nil {
			return err
		}
		e.TaskDefinitionARN = td
	}
	CompleteEntity(e)
	return nil
}

// LearnEvent records what an event says about its task (container ids,
// task definition) without resolving anything. Replay calls it while
// reading, before ordering: the links are facts about ids, not about time,
// so a Falco alert resolves even when its task's state change comes later.
func (r *Resolver) LearnEvent(ctx context.Context, ev *Event, extraContainers ...string) error {
	e := &ev.Entity
	if e.TaskARN == "" {
		return nil
	}
	if len(extraContainers) > 0 {
		if err := r.Learn(ctx, e.TaskARN, extraContainers...); err != nil {
			return err
		}
	}
	if e.ContainerID != "" {
		if err := r.Learn(ctx, e.TaskARN, e.ContainerID); err != nil {
			return err
		}
	}
	if e.TaskDefinitionARN != "" {
		return r.learnTaskDef(ctx, e.TaskARN, e.TaskDefinitionARN)
	}
	return nil
}

// learnTaskDef records the task definition of a task, so that events that
// only know the task (Falco alerts, metrics) can be linked to drifted task
// definitions.
func (r *Resolver) learnTaskDef(ctx context.Context, taskARN, td string) error {
	r.mu.Lock()
	if r.taskDef[taskARN] == td {
		r.mu.Unlock()
		return nil
	}
	if len(r.taskDef) >= r.max {
		for k := range r.taskDef {
			delete(r.taskDef, k)
			break
		}
	}
	r.taskDef[taskARN] = td
	if r.store != nil {
		r.pending["taskdef:"+taskARN] = td
	}
	r.mu.Unlock()
	return nil
}

func (r *Resolver) lookupTaskDef(ctx context.Context, taskARN string) (string, error) {
	r.mu.Lock()
	td, ok := r.taskDef[taskARN]
	if !ok {
		td, ok = r.pending["taskdef:"+taskARN]
	}
	r.mu.Unlock()
	if ok || r.store == nil {
		return td, nil
	}
	td, ok, err := r.store.GetContainer(ctx, "taskdef:"+taskARN)
	if err != nil || !ok {
		return "", err
	}
	r.mu.Lock()
	r.taskDef[taskARN] = td
	r.mu.Unlock()
	return td, nil
}

// CompleteEntity fills account, region and cluster from the task ARN where
// they are missing.
func CompleteEntity(e *Entity) {
	if e.TaskARN == "" {
		return
	}
	t, ok := ParseTaskARN(e.TaskARN)
	if !ok {
		return
	}
	if e.Account == "" {
		e.Account = t.Account
	}
	if e.Region == "" {
		e.Region = t.Region
	}
	if e.Cluster == "" {
		e.Cluster = t.Cluster
	}
}
