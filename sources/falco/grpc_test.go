package falco

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/api/schema"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// fakeFalco serves client-go's outputs service as Falco does: each
// request on a Sub stream is answered with the alerts queued so far.
type fakeFalco struct {
	outputs.UnimplementedServiceServer
	q chan *outputs.Response
}

func (f *fakeFalco) Sub(st outputs.Service_SubServer) error {
	for {
		if _, err := st.Recv(); err != nil {
			return err
		}
		for {
			select {
			case r := <-f.q:
				if err := st.Send(r); err != nil {
					return err
				}
				continue
			default:
			}
			break
		}
	}
}

type testServer struct {
	srv  *grpc.Server
	done chan struct{}
}

func serve(t *testing.T, ln net.Listener, f *fakeFalco, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	s := &testServer{srv: grpc.NewServer(opts...), done: make(chan struct{})}
	outputs.RegisterServiceServer(s.srv, f)
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	t.Cleanup(s.kill)
	return s
}

// kill drops every connection and stream at once.
func (s *testServer) kill() {
	s.srv.Stop()
	<-s.done
}

var testTaskARN = "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"

func grpcTime(i int) time.Time {
	// i == 0 lands on a whole second: the nine-digit layout matters.
	return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * (time.Millisecond + 7))
}

// response is alert i as Falco's gRPC output sends it: output_fields all
// strings, "null" for a field it could not extract.
func response(i int) *outputs.Response {
	t := grpcTime(i)
	return &outputs.Response{
		Time:     timestamppb.New(t),
		Priority: schema.Priority_CRITICAL,
		Rule:     "Terminal shell in container",
		Output:   fmt.Sprintf("10:00:00.000000000: Critical A shell was spawned in a container (n=%d <x> & y)", i),
		OutputFields: map[string]string{
			"container.id": "abcdef123456",
			"evt.time":     strconv.FormatInt(t.UnixNano(), 10),
			"proc.cmdline": "bash -i",
			"proc.pid":     strconv.Itoa(1000 + i),
			"container.label[com.amazonaws.ecs.task-arn]": testTaskARN,
			"container.label[com.amazonaws.ecs.cluster]":  "null",
		},
		Hostname: "ip-10-0-1-17",
		Tags:     []string{"container", "mitre_execution", "shell"},
		Source:   "syscall",
	}
}

// jsonOutput is the same alert as Falco's json_output writes it (typed
// output_fields, null for missing ones), written independently.
func jsonOutput(i int) []byte {
	t := grpcTime(i)
	r := response(i)
	return fmt.Appendf(nil, `{"hostname":"ip-10-0-1-17","output":%q,"output_fields":{"container.id":"abcdef123456","container.label[com.amazonaws.ecs.cluster]":null,"container.label[com.amazonaws.ecs.task-arn]":%q,"evt.time":%d,"proc.cmdline":"bash -i","proc.pid":%d},"priority":"Critical","rule":"Terminal shell in container","source":"syscall","tags":["container","mitre_execution","shell"],"time":"%s.%09dZ"}`,
		r.Output, testTaskARN, t.UnixNano(), 1000+i, t.Format("2006-01-02T15:04:05"), t.Nanosecond())
}

func decodeOne(t *testing.T, data []byte) *pipeline.Event {
	t.Helper()
	var evs []*pipeline.Event
	err := format.Decode(data, pipeline.Position{File: "test"}, func(ev *pipeline.Event) error {
		evs = append(evs, ev)
		return nil
	}, func(e format.RecordError) { t.Errorf("bad: %v", e) })
	if err != nil || len(evs) != 1 {
		t.Fatalf("decoded %d events: %v", len(evs), err)
	}
	return evs[0]
}

// The gRPC path gives the same events (ids included) as json_output does
// for the same alert.
func TestGRPCResponseMatchesJSONOutput(t *testing.T) {
	for _, i := range []int{0, 1, 123456} {
		var buf bytes.Buffer
		if err := responseJSON(&buf, response(i)); err != nil {
			t.Fatal(err)
		}
		g, j := decodeOne(t, buf.Bytes()), decodeOne(t, jsonOutput(i))
		if g.ID != j.ID || g.Type != j.Type || !g.Time.Equal(j.Time) || g.Severity != j.Severity || g.Entity != j.Entity || g.Source != j.Source {
			t.Fatalf("alert %d:\ngRPC %+v\njson %+v\n%s", i, g, j, buf.String())
		}
		if g.Entity.TaskARN != testTaskARN || g.Entity.ContainerID != "abcdef123456" || g.Entity.Cluster != "prod" || g.Severity != pipeline.SeverityCritical {
			t.Fatalf("entity %+v severity %v", g.Entity, g.Severity)
		}
		if i == 0 && !strings.Contains(buf.String(), `"time":"2026-03-01T10:00:00.000000000Z"`) {
			t.Fatalf("time not in json_output's layout: %s", buf.String())
		}
	}
}

func wantGRPCIDs(t *testing.T, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, decodeOne(t, jsonOutput(i)).ID)
	}
	slices.Sort(out)
	return out
}

func newGRPC(t *testing.T, o GRPCOptions) *GRPCInput {
	t.Helper()
	if o.SpoolDir == "" {
		o.SpoolDir = t.TempDir()
	}
	o.PollInterval, o.BackoffMin, o.BackoffMax = 5*time.Millisecond, 10*time.Millisecond, 200*time.Millisecond
	in, err := NewGRPC(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

// waitFor polls cond (a wait for a state, never an assertion on time).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func push(f *fakeFalco, from, to int) {
	for i := from; i < to; i++ {
		f.q <- response(i)
	}
}

// Kill the server mid-stream: the input reconnects and no alert is lost
// or doubled.
func TestGRPCUnixReconnect(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "falco.sock")
	f := &fakeFalco{q: make(chan *outputs.Response, 1000)}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s1 := serve(t, ln, f)
	in := newGRPC(t, GRPCOptions{Endpoints: []string{"unix://" + sock}})
	waitFor(t, "connected", func() bool { return in.Ready() == nil })
	push(f, 0, 50)
	evs, _, _ := readN(t, in, 50)
	s1.kill() // the stream is open, waiting for more
	waitFor(t, "disconnected", func() bool { return in.Ready() != nil })
	if err := in.Ready(); !strings.Contains(err.Error(), "no Falco endpoint connected") {
		t.Fatalf("Ready: %v", err)
	}
	push(f, 50, 100) // queued while no client is connected
	ln2, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln2, f)
	more, _, _ := readN(t, in, 50)
	evs = append(evs, more...)
	if got, want := ids(evs), wantGRPCIDs(t, 0, 100); !slices.Equal(got, want) {
		t.Fatalf("read %d events; want exactly the 100 alerts once each", len(got))
	}
	noMore(t, in.r.spool)
	if err := in.Ready(); err != nil {
		t.Fatal(err)
	}
	ep := in.eps[0]
	ep.mu.Lock()
	streams := ep.streams
	ep.mu.Unlock()
	if streams != 2 {
		t.Fatalf("%d streams, want 2", streams)
	}
	for _, ev := range evs {
		if ev.Received.IsZero() || ev.Entity.TaskARN != testTaskARN {
			t.Fatalf("event %+v", ev)
		}
	}
}

// pki writes a CA and a certificate for each of names (server and client),
// returning the file paths.
type pki struct{ ca, srvCert, srvKey, cliCert, cliKey string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test falco CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kd)
	}
	p := pki{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.srvCert, p.srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.cliCert, p.cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func mtlsServerCreds(t *testing.T, p pki) grpc.ServerOption {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.srvCert, p.srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(p.ca)
	pool.AppendCertsFromPEM(caPEM)
	return grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}))
}

// Over TCP with mutual TLS, two endpoints at once (plus a unix one), with
// a server killed and restarted on the same port.
func TestGRPCMutualTLSAndSeveralEndpoints(t *testing.T) {
	p := newPKI(t, t.TempDir())
	f1 := &fakeFalco{q: make(chan *outputs.Response, 1000)}
	f2 := &fakeFalco{q: make(chan *outputs.Response, 1000)}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr1 := ln1.Addr().String()
	s1 := serve(t, ln1, f1, mtlsServerCreds(t, p))
	sock := filepath.Join(t.TempDir(), "falco.sock")
	ln2, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln2, f2)
	in := newGRPC(t, GRPCOptions{Endpoints: []string{addr1, "unix://" + sock}, CertFile: p.cliCert, KeyFile: p.cliKey, CARootFile: p.ca})
	waitFor(t, "both connected", func() bool {
		for _, ep := range in.eps {
			ep.mu.Lock()
			c := ep.connected
			ep.mu.Unlock()
			if !c {
				return false
			}
		}
		return true
	})
	push(f1, 0, 40)
	push(f2, 40, 80)
	evs, _, _ := readN(t, in, 80)
	s1.kill()
	waitFor(t, "TCP endpoint disconnected", func() bool {
		in.eps[0].mu.Lock()
		defer in.eps[0].mu.Unlock()
		return !in.eps[0].connected
	})
	if err := in.Ready(); err != nil {
		t.Fatalf("one endpoint is still connected: %v", err)
	}
	push(f1, 80, 120)
	ln3, err := net.Listen("tcp", addr1)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln3, f1, mtlsServerCreds(t, p))
	more, _, _ := readN(t, in, 40)
	evs = append(evs, more...)
	if got, want := ids(evs), wantGRPCIDs(t, 0, 120); !slices.Equal(got, want) {
		t.Fatalf("read %d events; want exactly the 120 alerts once each", len(got))
	}
	noMore(t, in.r.spool)
}

// A client certificate from another CA is refused: no stream, not ready.
func TestGRPCMutualTLSRefusesAStranger(t *testing.T) {
	p := newPKI(t, t.TempDir())
	other := newPKI(t, t.TempDir())
	f := &fakeFalco{q: make(chan *outputs.Response, 10)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, f, mtlsServerCreds(t, p))
	in := newGRPC(t, GRPCOptions{Endpoints: []string{ln.Addr().String()}, CertFile: other.cliCert, KeyFile: other.cliKey, CARootFile: p.ca})
	push(f, 0, 1)
	ep := in.eps[0]
	waitFor(t, "a failed attempt", func() bool {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return ep.lastErr != nil && ep.streams == 0
	})
	if err := in.Ready(); err == nil {
		t.Fatal("ready with a refused certificate")
	}
	if len(f.q) != 1 {
		t.Fatal("alert delivered to a refused client")
	}
}

func TestGRPCConfigErrors(t *testing.T) {
	for _, o := range []GRPCOptions{
		{SpoolDir: "x"},
		{Endpoints: []string{"unix:///run/falco/falco.sock"}},
		{Endpoints: []string{"127.0.0.1:5060"}, SpoolDir: "x"}, // TCP without certificates
		{Endpoints: []string{"falco"}, SpoolDir: "x"},
	} {
		if _, err := NewGRPC(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// The spool makes the stream durable: alerts spooled and not acknowledged
// come again after a restart even though Falco sends them only once.
func TestGRPCRestartRedelivers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "falco.sock")
	f := &fakeFalco{q: make(chan *outputs.Response, 100)}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, f)
	dir := t.TempDir()
	in := newGRPC(t, GRPCOptions{Endpoints: []string{"unix://" + sock}, SpoolDir: dir, MaxBatch: 4})
	push(f, 0, 10)
	evs, bs, acks := readN(t, in, 10)
	acks[0](context.Background(), nil)
	in.Close(context.Background())
	in2, err := NewGRPC(GRPCOptions{Endpoints: []string{"unix://" + sock}, SpoolDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := in2.Open(context.Background(), bs[0].Position); err != nil {
		t.Fatal(err)
	}
	defer in2.Close(context.Background())
	again, _, _ := readN(t, in2, 10-len(bs[0].Events))
	if got, want := ids(again), ids(evs[len(bs[0].Events):]); !slices.Equal(got, want) {
		t.Fatalf("redelivered %v, want %v", got, want)
	}
	noMore(t, in2.r.spool)
}
