package state

import (
	"context"
	"fmt"
)

// PutContainers implements pipeline.ContainerMap: it writes many
// container → task links in one batch, so that learning links stays off
// the per-event write path.
func (s *Store) PutContainers(_ context.Context, links map[string]string) error {
	if len(links) == 0 {
		return nil
	}
	b := s.NewBatch()
	for c, t := range links {
		b.Set(Key(KindContainer, c), []byte(t), s.opts.ContainerTTL)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("state: writing %d container links: %w", len(links), err)
	}
	return nil
}
