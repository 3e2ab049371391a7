package falco

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
	"github.com/ecscorr/ecscorr/pipeline/format"
)

// alert returns the fixture alert with uuid i and a time i ms after a base.
func alert(t testing.TB, i int) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/falco-json-alert.falcosidekick-readme.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["uuid"] = alertID(i)
	m["time"] = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000000Z")
	m["source"] = "syscall"
	m["tags"] = []string{"filesystem", "mitre_persistence"}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func alertID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

type badLog struct {
	mu   sync.Mutex
	errs []format.RecordError
}

func (b *badLog) add(e format.RecordError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, e)
}

func (b *badLog) get() []format.RecordError {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

func openHTTP(t *testing.T, o HTTPOptions, pos []byte) *HTTPInput {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	in, err := NewHTTP(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Open(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

func url(in *HTTPInput, path string) string { return "http://" + in.Addr().String() + path }

func post(t testing.TB, c *http.Client, u string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readN reads batches until n events, acking none; it fails on a timeout.
func readN(t *testing.T, in pipeline.Input, n int) ([]*pipeline.Event, []pipeline.Batch, []pipeline.AckFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var evs []*pipeline.Event
	var bs []pipeline.Batch
	var acks []pipeline.AckFunc
	for len(evs) < n {
		b, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d events: %v", len(evs), n, err)
		}
		evs = append(evs, b.Events...)
		bs = append(bs, b)
		acks = append(acks, ack)
	}
	return evs, bs, acks
}

// noMore checks that nothing more is readable right now: the spool's
// durable end equals the reader's offset.
func noMore(t *testing.T, sp *Spool) {
	t.Helper()
	sp.rmu.Lock()
	r := sp.rOff
	sp.rmu.Unlock()
	if _, _, durable, _ := sp.Stats(); durable != r {
		t.Fatalf("more records in the spool: read up to %d, durable %d", r, durable)
	}
}

func ids(evs []*pipeline.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	slices.Sort(out)
	return out
}

func wantIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, alertID(i))
	}
	slices.Sort(out)
	return out
}

func TestHTTPConcurrentPostsAndReopen(t *testing.T) {
	dir := t.TempDir()
	var syncs int
	var smu sync.Mutex
	o := HTTPOptions{SpoolDir: dir, Spool: SpoolOptions{beforeSync: func() { smu.Lock(); syncs++; smu.Unlock() }}}
	in := openHTTP(t, o, nil)
	const workers, per = 16, 40
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				if code, body := post(t, c, url(in, "/"), alert(t, w*per+j)); code != http.StatusOK {
					t.Errorf("POST: %d %s", code, body)
				}
			}
		}()
	}
	wg.Wait()
	evs, _, _ := readN(t, in, workers*per)
	if got, want := ids(evs), wantIDs(0, workers*per); !slices.Equal(got, want) {
		t.Fatalf("read %d events, want exactly ids 0..%d", len(got), workers*per-1)
	}
	noMore(t, in.r.spool)
	for _, ev := range evs {
		if ev.Source != pipeline.SourceFalco || ev.Type != "Write below binary dir" || ev.Severity != pipeline.SeverityHigh {
			t.Fatalf("event %+v", ev)
		}
		if ev.Received.Before(start) || ev.Received.After(time.Now()) {
			t.Fatalf("Received %v not the receipt time", ev.Received)
		}
	}
	smu.Lock()
	t.Logf("%d POSTs, %d syncs", workers*per, syncs)
	if syncs == 0 || syncs > workers*per {
		t.Fatalf("%d syncs for %d POSTs", syncs, workers*per)
	}
	smu.Unlock()
	if st := in.Stats(); st.Accepted != workers*per || st.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Every POST answered 200 is in the spool after reopening (nothing was
	// acknowledged, so everything is redelivered, once).
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	in2 := openHTTP(t, o, nil)
	evs2, _, _ := readN(t, in2, workers*per)
	if got, want := ids(evs2), wantIDs(0, workers*per); !slices.Equal(got, want) {
		t.Fatalf("after reopen read %d events, want exactly %d", len(got), len(want))
	}
	noMore(t, in2.r.spool)
}

// A POST is answered only after the sync that makes its alert durable.
func TestHTTPAnswersOnlyAfterSync(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	o := HTTPOptions{SpoolDir: t.TempDir(), Spool: SpoolOptions{beforeSync: func() {
		entered <- struct{}{}
		<-release
	}}}
	in := openHTTP(t, o, nil)
	answered := make(chan int, 1)
	go func() {
		code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, 1))
		answered <- code
	}()
	<-entered // the record is written, its sync has not run
	select {
	case code := <-answered:
		t.Fatalf("answered %d before the sync", code)
	default:
	}
	if _, _, durable, _ := in.r.spool.Stats(); durable != 0 {
		t.Fatalf("durable %d before the sync", durable)
	}
	close(release)
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	evs, _, _ := readN(t, in, 1)
	if evs[0].ID != alertID(1) {
		t.Fatalf("id %s", evs[0].ID)
	}
}

func TestHTTPSecret(t *testing.T) {
	t.Setenv("FALCO_TEST_SECRET", "Bearer s3cr3t")
	in := openHTTP(t, HTTPOptions{SpoolDir: t.TempDir(), SecretEnv: "FALCO_TEST_SECRET"}, nil)
	c := http.DefaultClient
	if code, _ := post(t, c, url(in, "/"), alert(t, 1)); code != http.StatusUnauthorized {
		t.Fatalf("no secret: %d", code)
	}
	if code, _ := post(t, c, url(in, "/"), alert(t, 2), "Authorization", "Bearer s3cr3"); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, _ := post(t, c, url(in, "/"), alert(t, 3), "Authorization", "Bearer s3cr3t"); code != http.StatusOK {
		t.Fatalf("right secret: %d", code)
	}
	evs, _, _ := readN(t, in, 1)
	if evs[0].ID != alertID(3) {
		t.Fatalf("id %s", evs[0].ID)
	}
	noMore(t, in.r.spool)
	if st := in.Stats(); st.Unauthorized != 2 || st.Accepted != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A custom header.
	in2 := openHTTP(t, HTTPOptions{SpoolDir: t.TempDir(), Secret: "abc", SecretHeader: "X-Falco-Secret"}, nil)
	if code, _ := post(t, c, url(in2, "/"), alert(t, 4), "Authorization", "abc"); code != http.StatusUnauthorized {
		t.Fatalf("secret in the wrong header: %d", code)
	}
	if code, _ := post(t, c, url(in2, "/"), alert(t, 4), "X-Falco-Secret", "abc"); code != http.StatusOK {
		t.Fatalf("custom header: %d", code)
	}
}

func TestHTTPBadBodies(t *testing.T) {
	var bad badLog
	in := openHTTP(t, HTTPOptions{SpoolDir: t.TempDir(), Bad: bad.add}, nil)
	ct := `{"eventVersion":"1.08","eventTime":"2026-03-01T10:00:00Z","eventSource":"ecs.amazonaws.com","eventName":"ListClusters","awsRegion":"eu-west-1","eventID":"e1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser"}}`
	cases := []struct{ name, body, reason string }{
		{"text output", "10:00:00.000000000: Error File below a known binary directory opened for writing", "not a JSON object or array"},
		{"cut short", `{"rule":"x","time":"2026-03-01T10:00:00Z","output_fields":{`, "invalid JSON"},
		{"no time", `{"rule":"x","priority":"Error","output":"o","output_fields":{}}`, "usable time"},
		{"cloudtrail", ct, "not a Falco alert"},
		{"empty", "", "empty"},
	}
	for _, c := range cases {
		code, body := post(t, http.DefaultClient, url(in, "/"), []byte(c.body))
		if code != http.StatusBadRequest || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %q, want 400 with %q", c.name, code, body, c.reason)
		}
	}
	errs := bad.get()
	if len(errs) != 5 {
		t.Fatalf("%d records reported to Bad, want 5: %+v", len(errs), errs)
	}
	for i, e := range errs {
		if !strings.Contains(e.Reason, cases[i].reason) || !strings.HasPrefix(e.Pos.File, "falco_http://") || e.Pos.Line != i+1 {
			t.Errorf("bad %d: %+v", i, e)
		}
	}
	if _, _, durable, _ := in.r.spool.Stats(); durable != 0 {
		t.Fatalf("bad bodies spooled: durable %d", durable)
	}
	// An array: the good alerts are accepted, the bad one reported.
	arr := fmt.Sprintf("[%s,%s,%s]", alert(t, 1), `{"rule":"x"}`, alert(t, 2))
	code, body := post(t, http.DefaultClient, url(in, "/"), []byte(arr))
	if code != http.StatusOK || !strings.Contains(body, `"accepted":2,"rejected":1`) {
		t.Fatalf("array: %d %s", code, body)
	}
	evs, _, _ := readN(t, in, 2)
	if got := ids(evs); !slices.Equal(got, wantIDs(1, 3)) {
		t.Fatalf("ids %v", got)
	}
	if n := len(bad.get()); n != 6 {
		t.Fatalf("%d bad, want 6", n)
	}
	// Other methods and paths.
	resp, err := http.Get(url(in, "/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	inp := openHTTP(t, HTTPOptions{SpoolDir: t.TempDir(), Path: "/falco"}, nil)
	if code, _ := post(t, http.DefaultClient, url(inp, "/other"), alert(t, 1)); code != http.StatusNotFound {
		t.Fatalf("other path: %d", code)
	}
	if code, _ := post(t, http.DefaultClient, url(inp, "/falco"), alert(t, 1)); code != http.StatusOK {
		t.Fatalf("path: %d", code)
	}
	if code, _ := post(t, http.DefaultClient, url(in, "/any/path"), alert(t, 9)); code != http.StatusOK {
		t.Fatalf("default path accepts any: %d", code)
	}
}

func TestHTTPTooLarge(t *testing.T) {
	in := openHTTP(t, HTTPOptions{SpoolDir: t.TempDir(), MaxBody: 600}, nil)
	big := alert(t, 1)
	big = append(big[:len(big)-1], []byte(`,"pad":"`+strings.Repeat("x", 600)+`"}`)...)
	if code, _ := post(t, http.DefaultClient, url(in, "/"), big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("with Content-Length: %d", code)
	}
	// Chunked: no Content-Length, cut while reading.
	req, _ := http.NewRequest(http.MethodPost, url(in, "/"), io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: %d", resp.StatusCode)
	}
	if code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, 2)); code != http.StatusOK {
		t.Fatalf("small: %d", code)
	}
	if st := in.Stats(); st.TooLarge != 2 || st.Accepted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Restarting from the last acknowledged Position redelivers exactly the
// unacknowledged alerts; a nack redelivers in the same process.
func TestHTTPRestartFromPosition(t *testing.T) {
	dir := t.TempDir()
	o := HTTPOptions{SpoolDir: dir, MaxBatch: 3, Spool: SpoolOptions{SegmentBytes: 1500}}
	in := openHTTP(t, o, nil)
	for i := range 20 {
		if code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, i)); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	evs, bs, acks := readN(t, in, 20)
	if got := ids(evs); !slices.Equal(got, wantIDs(0, 20)) {
		t.Fatalf("ids %v", got)
	}
	for _, b := range bs {
		if len(b.Events) > 3 {
			t.Fatalf("batch of %d > MaxBatch", len(b.Events))
		}
	}
	// Acknowledge the batches holding the first 9 events (in read order).
	acked := 0
	var pos []byte
	for i := 0; acked < 9; i++ {
		if err := acks[i](context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		acked += len(bs[i].Events)
		pos = bs[i].Position
	}
	segs, _, _, _ := in.r.spool.Stats()
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != segs || segs >= 1+20*(len(alert(t, 0))+recHeader)/1500 {
		t.Fatalf("%d segment files (%d in the spool): acknowledged segments not deleted", len(files), segs)
	}
	in2 := openHTTP(t, o, pos)
	evs2, bs2, acks2 := readN(t, in2, 20-acked)
	if got, want := ids(evs2), ids(evs[acked:]); !slices.Equal(got, want) {
		t.Fatalf("redelivered %v, want %v", got, want)
	}
	noMore(t, in2.r.spool)
	// A nack: the batch comes again.
	if err := acks2[0](context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := acks2[1](context.Background(), context.Canceled); err != nil {
		t.Fatal(err)
	}
	evs3, _, _ := readN(t, in2, len(evs2)-len(bs2[0].Events))
	if got, want := ids(evs3), ids(evs2[len(bs2[0].Events):]); !slices.Equal(got, want) {
		t.Fatalf("after a nack %v, want %v", got, want)
	}
	noMore(t, in2.r.spool)
}

// A torn last record (a write cut short) is dropped on reopen and the
// spool goes on after it.
func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	o := HTTPOptions{SpoolDir: dir}
	in := openHTTP(t, o, nil)
	for i := range 5 {
		if code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, i)); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	in.Close(context.Background())
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != 1 {
		t.Fatalf("segments %v", files)
	}
	fi, _ := os.Stat(files[0])
	good := fi.Size()
	for _, torn := range []func([]byte) []byte{
		func(rec []byte) []byte { return rec[:len(rec)-7] },             // payload cut short
		func(rec []byte) []byte { return rec[:10] },                     // header cut short
		func(rec []byte) []byte { rec[len(rec)-3] ^= 0xff; return rec }, // garbage (unsynced pages)
	} {
		rec := torn(appendRecord(nil, time.Now(), alert(t, 99)))
		f, err := os.OpenFile(files[0], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(rec)
		f.Close()
		in := openHTTP(t, o, nil)
		if fi, _ := os.Stat(files[0]); fi.Size() != good {
			t.Fatalf("torn tail not truncated: %d bytes, want %d", fi.Size(), good)
		}
		evs, _, _ := readN(t, in, 5)
		if got := ids(evs); !slices.Equal(got, wantIDs(0, 5)) {
			t.Fatalf("ids %v", got)
		}
		noMore(t, in.r.spool)
		in.Close(context.Background())
	}
	// And appends continue after the good records.
	in = openHTTP(t, o, nil)
	if code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, 5)); code != http.StatusOK {
		t.Fatal(code)
	}
	evs, _, _ := readN(t, in, 6)
	if got := ids(evs); !slices.Equal(got, wantIDs(0, 6)) {
		t.Fatalf("ids %v", got)
	}
}

func TestSpoolFull(t *testing.T) {
	one := int64(len(alert(t, 0)) + recHeader)
	in := openHTTP(t, HTTPOptions{SpoolDir: t.TempDir(), Spool: SpoolOptions{MaxBytes: 2 * one}}, nil)
	for i, want := range []int{200, 200, 503} {
		if code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, i)); code != want {
			t.Fatalf("POST %d: %d, want %d", i, code, want)
		}
	}
	_, _, acks := readN(t, in, 2)
	for _, a := range acks {
		a(context.Background(), nil)
	}
	// Acknowledged space comes back: the writer replaces the fully
	// acknowledged segment.
	for i := 3; i < 5; i++ {
		if code, _ := post(t, http.DefaultClient, url(in, "/"), alert(t, i)); code != http.StatusOK {
			t.Fatalf("POST %d after acks: %d", i, code)
		}
	}
	evs, _, _ := readN(t, in, 2)
	if got := ids(evs); !slices.Equal(got, wantIDs(3, 5)) {
		t.Fatalf("ids %v", got)
	}
	if st := in.Stats(); st.Unavailable != 1 {
		t.Fatalf("stats %+v", st)
	}
}
