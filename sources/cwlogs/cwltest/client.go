package cwltest

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
)

// Client returns a real CloudWatch Logs client pointed at the server with
// its credentials and region. Its retryer is the SDK's standard one (3
// attempts, retrying throttling and 5xx) with a 1 ms backoff, so that
// tests of retries stay fast.
func (s *Server) Client(optFns ...func(*cloudwatchlogs.Options)) *cloudwatchlogs.Client {
	cfg := aws.Config{
		Region:      s.o.Region,
		Credentials: credentials.NewStaticCredentialsProvider(s.o.AccessKeyID, s.o.SecretAccessKey, ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
	return cloudwatchlogs.NewFromConfig(cfg, append([]func(*cloudwatchlogs.Options){func(o *cloudwatchlogs.Options) {
		o.BaseEndpoint = aws.String(s.URL)
	}}, optFns...)...)
}
