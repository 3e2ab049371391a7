// Package s3test runs github.com/johannesboyne/gofakes3 (backend s3mem)
// behind an httptest server for tests of the real S3 client, with
// injectable failures of GetObject.
package s3test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Server is a fake S3.
type Server struct {
	URL     string
	Backend *s3mem.Backend
	srv     *httptest.Server

	mu      sync.Mutex
	fail    int // GetObject answers left to fail
	status  int
	gets    int
	lists   int
	failing func(key string) bool
}

// New starts a server.
func New() *Server {
	s := &Server{Backend: s3mem.New()}
	h := gofakes3.New(s.Backend).Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			s.mu.Lock()
			s.lists++
			s.mu.Unlock()
		} else if r.Method == http.MethodGet && strings.Count(strings.TrimPrefix(r.URL.Path, "/"), "/") >= 1 {
			s.mu.Lock()
			s.gets++
			fail := s.fail > 0 && (s.failing == nil || s.failing(r.URL.Path))
			if fail {
				s.fail--
			}
			status := s.status
			s.mu.Unlock()
			if fail {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				code := "InternalError"
				if status == http.StatusServiceUnavailable {
					code = "SlowDown"
				}
				_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>injected</Message><RequestId>0</RequestId></Error>`))
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Client returns a path-style client of the server.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
	})
}

// Put stores an object (creating its bucket).
func (s *Server) Put(bucket, key string, body []byte) {
	_ = s.Backend.CreateBucket(bucket) // exists already: fine
	if _, err := s.Backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		panic(err)
	}
}

// FailGets makes the next n GetObject calls (of paths failing accepts, or
// all when nil) answer status (500 InternalError, 503 SlowDown).
func (s *Server) FailGets(n, status int, failing func(path string) bool) {
	s.mu.Lock()
	s.fail, s.status, s.failing = n, status, failing
	s.mu.Unlock()
}

// Gets and Lists count GetObject and ListObjectsV2 requests.
func (s *Server) Gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// Lists counts ListObjectsV2 requests.
func (s *Server) Lists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}
