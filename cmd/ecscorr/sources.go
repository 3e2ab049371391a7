package main

import (
	"context"
	"net/url"
	"os"
	"strings"

	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"log/slog"
	"time"

	"github.com/ecscorr/ecscorr/correlate/rule"
	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/sources/cwlogs"
	"github.com/ecscorr/ecscorr/sources/falco"
	kafkasrc "github.com/ecscorr/ecscorr/sources/kafka"
	s3src "github.com/ecscorr/ecscorr/sources/s3"
	"github.com/ecscorr/ecscorr/sources/sqs"
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
		case "sqs":
			o := sqs.Options{QueueURL: sc.QueueURL, Name: sc.Name, Wait: time.Duration(sc.Wait), MaxMessages: int32(sc.MaxMessages),
				VisibilityTimeout: time.Duration(sc.VisibilityTimeout), Receivers: sc.Receivers, NackBackoff: time.Duration(sc.NackBackoff),
				Bad: dl.bad(sc.Name), Logger: log}
			region := sc.Region
			if region == "" {
				region = queueRegion(sc.QueueURL)
			}
			if sc.Region != "" || os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
				var ac aws.Config
				if ac, err = awsConfig(ctx, region); err == nil && ac.Region == "" {
					// A local SQS (its URL names no region) with no region
					// configured anywhere: SigV4 still needs one.
					log.Warn("sqs: no AWS region in the config, the environment or the queue URL; signing for us-east-1", "input", sc.Name)
					ac.Region = "us-east-1"
				}
				if err == nil {
					o.Client = awssqs.NewFromConfig(ac)
					o.S3Client, err = s3src.NewClient(ctx, func(so *awss3.Options) { so.Region = ac.Region })
				}
			}
			if err == nil {
				in, err = sqs.New(o)
			}
		case "s3":
			o := s3src.Options{Bucket: sc.Bucket, Prefix: sc.Prefix, Name: sc.Name, Interval: time.Duration(sc.Interval),
				StartAfter: sc.StartAfter, MaxKeys: int32(sc.MaxKeys), Bad: dl.bad(sc.Name), Logger: log}
			if sc.Region != "" {
				o.Client, err = s3src.NewClient(ctx, func(so *awss3.Options) { so.Region = sc.Region })
			}
			if err == nil {
				in, err = s3src.New(o)
			}
		case "cloudwatch_logs":
			o := cwlogs.Options{Name: sc.Name, Clusters: sc.Clusters, Region: sc.Region, Interval: time.Duration(sc.Interval),
				Lookback: time.Duration(sc.Lookback), Relist: time.Duration(sc.RelistInterval), Rate: sc.Rate, PageSize: int32(sc.PageSize),
				Bad: dl.bad(sc.Name), Logger: log}
			if sc.Start != "" {
				d, _ := rule.ParseDuration(sc.Start) // checked by the config loader
				o.Start = d
			}
			in = cwlogs.New(o)
		case "falco_http":
			in, err = falco.NewHTTP(falco.HTTPOptions{Name: sc.Name, Listen: sc.Listen, Path: sc.Path, Secret: sc.Secret,
				SecretHeader: sc.SecretHeader, MaxBody: int64(sc.MaxBody), SpoolDir: spoolDir(c, sc.Name), Bad: dl.bad(sc.Name), Logger: log})
		case "falco_grpc":
			in, err = falco.NewGRPC(falco.GRPCOptions{Name: sc.Name, Endpoints: sc.Endpoints, CertFile: sc.CertFile, KeyFile: sc.KeyFile,
				CARootFile: sc.CARootFile, SpoolDir: spoolDir(c, sc.Name), Bad: dl.bad(sc.Name), Logger: log})
		case "kafka":
			o := kafkasrc.Options{Name: sc.Name, Brokers: sc.Brokers, Topics: sc.Topics, Group: sc.Group,
				Format: sc.Format, Start: sc.Start, MaxBatch: sc.MaxBatch, ClientID: sc.ClientID,
				TLS: kafkaTLS(sc.TLS), Bad: dl.bad(sc.Name), Logger: log}
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

// awsConfig is the SDK's default chain, in region when one is given.
func awsConfig(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	return awsconfig.LoadDefaultConfig(ctx, opts...)
}

// queueRegion is the region in an SQS queue URL
// (https://sqs.eu-west-1.amazonaws.com/...), "" if it has none.
func queueRegion(queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && strings.HasPrefix(strings.Join(parts[2:], "."), "amazonaws.com") {
		return parts[1]
	}
	return ""
}
