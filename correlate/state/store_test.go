package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

var _ pipeline.ContainerMap = (*Store)(nil)

func TestStoreReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := s.NewBatch()
	for i := range 5 {
		b.Set(Key(KindWindow, "rule-a", fmt.Sprintf("k%d", i)), []byte{byte(i)}, time.Hour)
	}
	b.Set(Key(KindWindow, "rule-b", "k"), []byte("other"), 0)
	b.Set(Key(KindCheckpoint, "s3/bucket"), []byte("offset=42"), 0)
	b.Delete(Key(KindWindow, "rule-a", "k3"))
	if b.Len() != 8 {
		t.Fatalf("len %d", b.Len())
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Key(KindContainer, "abcdef012345"), []byte("arn:aws:ecs:eu-west-1:1:task/c/x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{GCInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	err = s.Iterate(Key(KindWindow, "rule-a", ""), func(k, v []byte) error {
		got = append(got, fmt.Sprintf("%s=%d", k[len("wrule-a")+1:], v[0]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[k0=0 k1=1 k2=2 k4=4]" {
		t.Fatalf("iterate: %v", got)
	}
	v, ok, err := s.GetCheckpoint("s3/bucket")
	if err != nil || !ok || string(v) != "offset=42" {
		t.Fatalf("checkpoint %q %v %v", v, ok, err)
	}
	arn, ok, err := s.GetContainer(ctx, "abcdef012345")
	if err != nil || !ok || arn != "arn:aws:ecs:eu-west-1:1:task/c/x" {
		t.Fatalf("container %q %v %v", arn, ok, err)
	}
	if _, ok, _ := s.GetContainer(ctx, "nope"); ok {
		t.Fatal("unknown container found")
	}
	if err := s.RunGC(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestInMemoryAndResolver(t *testing.T) {
	s, err := OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	r := pipeline.NewResolver(s, 10)
	const task = "arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef"
	if err := r.Learn(ctx, task, "0123456789ab0123456789ab0123456789ab0123456789ab0123456789ab0123"); err != nil {
		t.Fatal(err)
	}
	b := s.Begin()
	if err := r.CheckpointBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// A fresh resolver finds the link through the store.
	r2 := pipeline.NewResolver(s, 10)
	ev := &pipeline.Event{Entity: pipeline.Entity{ContainerID: "0123456789ab"}}
	if err := r2.Resolve(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if ev.Entity.TaskARN != task || ev.Entity.Cluster != "prod" || r2.Resolved != 1 {
		t.Fatalf("resolved %+v (%d)", ev.Entity, r2.Resolved)
	}
}

// A commit larger than one Badger transaction is still all or nothing: a
// crash at any stage of the journal leaves the old state or the new one,
// whole, once the store is reopened. (Badger's WriteBatch alone once left
// 18,848 of 20,000 writes of a failed commit.)
func TestBatchCommitIsAtomic(t *testing.T) {
	const n = 20000
	val := make([]byte, 200)
	for _, stage := range []commitStage{stageNone, stageJournal, stageMarked, stageApplied, stageUnmarked} {
		t.Run(fmt.Sprint(stage), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			old := s.NewBatch()
			old.Set(Key(KindMeta, "gen"), []byte("old"), 0)
			old.Set(Key(KindWindow, "r", "gone"), []byte("x"), 0)
			if err := old.Commit(); err != nil {
				t.Fatal(err)
			}
			s.failAt = stage
			b := s.NewBatch()
			for i := range n {
				b.Set(Key(KindWindow, "r", fmt.Sprintf("k%05d", i)), val, time.Hour)
			}
			b.Delete(Key(KindWindow, "r", "gone"))
			b.Set(Key(KindMeta, "gen"), []byte("new"), 0)
			err = b.Commit()
			if stage == stageNone && err != nil {
				t.Fatal(err)
			}
			if stage != stageNone && !errors.Is(err, errStopped) {
				t.Fatalf("stage %d: want the test stop, got %v", stage, err)
			}
			// The process dies here: no cleanup, just close the files.
			if err := s.db.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, Options{GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			gen, _, _ := s.Get(Key(KindMeta, "gen"))
			count := 0
			if err := s.Iterate(Key(KindWindow, "r", "k"), func(k, v []byte) error { count++; return nil }); err != nil {
				t.Fatal(err)
			}
			_, gone, _ := s.Get(Key(KindWindow, "r", "gone"))
			journal := 0
			s.Iterate([]byte{byte(kindJournal)}, func(k, v []byte) error { journal++; return nil })
			_, marked, _ := s.Get(markerKey)
			// Before the marker the commit never happened; from it on it did.
			wantNew := stage == stageNone || stage >= stageMarked
			switch {
			case wantNew && (string(gen) != "new" || count != n || gone):
				t.Errorf("want the new state whole: gen %q, %d of %d keys, deleted key present %v", gen, count, n, gone)
			case !wantNew && (string(gen) != "old" || count != 0 || !gone):
				t.Errorf("want the old state whole: gen %q, %d keys, deleted key present %v", gen, count, gone)
			}
			if journal != 0 || marked {
				t.Errorf("journal left behind: %d chunks, marker %v", journal, marked)
			}
		})
	}
}

func TestStateVersionRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(versionKey, []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(dir, Options{GCInterval: -1})
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "format 1") {
		t.Fatalf("want a version error naming format 1, got %v", err)
	}

	// A store from before versioning: keys but no stamp.
	dir = t.TempDir()
	s, err = Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.Delete(versionKey)
	b.Set(Key(KindMeta, "engine"), []byte("{}"), 0)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err = Open(dir, Options{GCInterval: -1}); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "before state was versioned") {
		t.Fatalf("want a version error for unversioned state, got %v", err)
	}
}

// A process killed while Badger creates a memtable leaves its file empty;
// the store opens over it, with what was committed before.
func TestOpenAfterKillDuringMemtableCreation(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	txn := s.Begin()
	txn.Set([]byte("k"), []byte("v"), 0)
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00002.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open over an empty memtable file: %v", err)
	}
	defer s.Close()
	if v, ok, err := s.Get([]byte("k")); err != nil || !ok || string(v) != "v" {
		t.Fatalf("k = %q %v %v after reopening", v, ok, err)
	}
}
