package state

import (
	"context"
	"fmt"
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
	if err := s.PutContainer(ctx, "abcdef012345", "arn:aws:ecs:eu-west-1:1:task/c/x"); err != nil {
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
	if err := r.Flush(ctx); err != nil {
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
