package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sources/cwlogs"
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
		case "cloudwatch_logs":
			o := cwlogs.Options{Name: sc.Name, Clusters: sc.Clusters, Region: sc.Region, Interval: time.Duration(sc.Interval),
				Lookback: time.Duration(sc.Lookback), Relist: time.Duration(sc.RelistInterval), Rate: sc.Rate, PageSize: int32(sc.PageSize),
				Bad: dl.bad(sc.Name), Logger: log}
			if sc.Start != "" {
				d, _ := rule.ParseDuration(sc.Start) // checked by the config loader
				o.Start = d
			}
			in = cwlogs.New(o)
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
