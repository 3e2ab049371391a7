package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sinks/eventbridge"
	"github.com/ecscorr/ecscorr/sinks/file"
	"github.com/ecscorr/ecscorr/sinks/kafka"
	"github.com/ecscorr/ecscorr/sinks/securityhub"
	"github.com/ecscorr/ecscorr/sinks/slack"
)

// buildSinks makes the configured stream sinks and their delivery
// policies. The sinks' own state (a Slack thread) lives in store.
func buildSinks(ctx context.Context, c *config, store pipeline.StateStore, stdout io.Writer, log *slog.Logger) ([]pipeline.Sink, map[string]pipeline.DeliveryPolicy, error) {
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
			// One fsync per delivery: take what is due at once.
			def.BatchSize = 1000
			// A service's log folder may not exist yet on a fresh
			// volume (/var/log/ecscorr): make it.
			if sc.Path != "-" {
				if err = os.MkdirAll(filepath.Dir(sc.Path), 0o750); err != nil {
					break
				}
			}
			var fs *file.Sink
			fs, err = file.Create(sc.Path, file.JSONL, pipeline.SinkStream, stdout)
			if fs != nil {
				s = named{fs, sc.Name}
			}
		case "slack":
			def = slack.DefaultPolicy()
			s, err = slack.New(slack.Config{
				Name: sc.Name, WebhookURL: sc.WebhookURL, Token: sc.Token, WebhookURLEnv: sc.WebhookURLEnv, WebhookURLFile: sc.WebhookURLFile,
				TokenEnv: sc.TokenEnv, TokenFile: sc.TokenFile, Channel: sc.Channel, BaseURL: sc.BaseURL,
				UpdateEvery: time.Duration(sc.UpdateEvery), Timeout: time.Duration(sc.Timeout), MaxEvidence: sc.MaxEvidence,
				Logger: log,
			}, store)
		case "securityhub":
			def = securityhub.DefaultPolicy()
			s, err = securityhub.New(ctx, securityhub.Config{
				Name: sc.Name, Region: sc.Region, AccountRoles: sc.AccountRoles, ExternalID: sc.ExternalID,
				SourceURL: sc.SourceURL, GuardDutyDetectors: sc.GuardDutyDetectors, Logger: log,
			})
		case "eventbridge":
			def = eventbridge.DefaultPolicy()
			s, err = eventbridge.New(ctx, eventbridge.Config{Name: sc.Name, BusName: sc.Bus, Source: sc.Source, Region: sc.Region, Logger: log})
		case "kafka":
			def = kafka.DefaultPolicy()
			kc := kafka.Config{Name: sc.Name, Brokers: sc.Brokers, Topic: sc.Topic, MaxMessageBytes: sc.MaxMessageBytes,
				ClientID: sc.ClientID, Timeout: time.Duration(sc.Timeout), TLS: kafkaTLS(sc.TLS)}
			s, err = kafka.New(kc)
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
