package sqs

import (
	"errors"
	"net/http"
	"strings"
)

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

func newUnsignedRequest(url string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"QueueName":"q"}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amz-Target", "AmazonSQS.GetQueueUrl")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	return req, nil
}

func httpDo(req *http.Request) (int, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
