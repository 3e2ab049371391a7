package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/ecscorr/ecscorr/pipeline"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
)

// buildInputs makes the configured live inputs.
func buildInputs(ctx context.Context, c *config, log *slog.Logger, dl *deadLetters) ([]pipeline.Input, error) {
	var ins []pipeline.Input
	closeAll := func() {
		for _, in := range ins {
			_ = in.Close(context.WithoutCancel(ctx))
		}
	}
	for _, sc := range c.Sources {
		var (
			in  pipeline.Input
			err error
		)
		switch sc.Type {
		case "kafka":
			o := kafkasrc.Options{Name: sc.Name, Brokers: sc.Brokers, Topics: sc.Topics, Group: sc.Group,
				Format: sc.Format, Start: sc.Start, MaxBatch: sc.MaxBatch, ClientID: sc.ClientID,
				Bad: dl.bad(sc.Name), Logger: log}
			if sc.TLS {
				o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			in, err = kafkasrc.New(o)
		default:
			err = fmt.Errorf("source type %q is not built in yet", sc.Type)
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: source %s: %w", sc.pos, sc.Name, err)
		}
		ins = append(ins, in)
	}
	return ins, nil
}
