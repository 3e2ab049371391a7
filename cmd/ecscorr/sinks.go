package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/file"
)

// buildSinks makes the configured stream sinks and their delivery
// policies. The sinks' own state (a Slack thread) lives in store.
func buildSinks(c *config, store pipeline.StateStore, stdout io.Writer) ([]pipeline.Sink, map[string]pipeline.DeliveryPolicy, error) {
	if c == nil {
		return nil, nil, nil
	}
	var sinks []pipeline.Sink
	pols := map[string]pipeline.DeliveryPolicy{}
	for _, sc := range c.Sinks {
		var (
			s   pipeline.Sink
			def pipeline.DeliveryPolicy
			err error
		)
		switch sc.Type {
		case "jsonl":
			var fs *file.Sink
			fs, err = file.Create(sc.Path, file.JSONL, pipeline.SinkStream, stdout)
			if fs != nil {
				s = named{fs, sc.Name}
			}
		default:
			err = fmt.Errorf("sink type %q is not built in", sc.Type)
		}
		if err != nil {
			for _, made := range sinks {
				_ = made.Close(context.Background())
			}
			return nil, nil, fmt.Errorf("%s: sink %s: %w", sc.pos, sc.Name, err)
		}
		sinks = append(sinks, s)
		pols[sc.Name] = sc.policy(def)
	}
	return sinks, pols, nil
}

// named gives a sink the name the config chose.
type named struct {
	pipeline.Sink
	name string
}

func (n named) Name() string { return n.name }
