package state

import (
	"fmt"
	"slices"
	"testing"
)

// TestSubNamespaces: two namespaces of one store write the same keys and
// each reads, iterates and drops only its own; the root sees both under
// their prefixes.
func TestSubNamespaces(t *testing.T) {
	st, err := Open(t.TempDir(), Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, b := st.Sub([]byte("P\x00a\x00")), st.Sub([]byte("P\x00b\x00"))
	for i, ns := range []*Store{a, b} {
		bt := ns.NewBatch()
		bt.Set([]byte("k1"), fmt.Appendf(nil, "v1-%d", i), 0)
		bt.Set([]byte("k2"), fmt.Appendf(nil, "v2-%d", i), 0)
		if err := bt.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok, err := b.Get([]byte("k1")); err != nil || !ok || string(v) != "v1-1" {
		t.Fatalf("b k1 = %q %v %v", v, ok, err)
	}
	var keys []string
	if err := a.Iterate([]byte("k"), func(k, v []byte) error {
		keys = append(keys, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"k1=v1-0", "k2=v2-0"}; !slices.Equal(keys, want) {
		t.Fatalf("a iterates %q, want %q", keys, want)
	}
	if _, ok, _ := st.Get([]byte("P\x00b\x00k2")); !ok {
		t.Fatal("the root does not see b's key under its prefix")
	}
	if err := a.DropPrefix(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Get([]byte("k1")); ok {
		t.Fatal("a's key survived its drop")
	}
	if v, ok, _ := b.Get([]byte("k2")); !ok || string(v) != "v2-1" {
		t.Fatalf("b's key after a's drop: %q %v", v, ok)
	}
	bt := b.NewBatch()
	bt.Delete([]byte("k1"))
	if err := bt.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get([]byte("k1")); ok {
		t.Fatal("b's delete did not apply")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Get([]byte("x")); err != nil {
		t.Fatalf("closing a namespace closed the store: %v", err)
	}
}
