package engine

import (
	"context"
)

func keyStoreKey(rt *ruleRT, key string) []byte  { return nil }
func dedupStoreKey(dk string) []byte             { return nil }
func (e *Engine) load(ctx context.Context) error { return nil }

// Checkpoint writes all dirty state in one batch.
func (e *Engine) Checkpoint(ctx context.Context) error { return nil }

// Close checkpoints and releases the engine (the store stays open).
func (e *Engine) Close(ctx context.Context) error { return e.Checkpoint(ctx) }
