package main

import "testing"

// TestGCLimitFollowsTheLiveHeap: the soft limit stays at its floor while
// the live heap is under half of it, then follows it up at twice the live
// heap, so the collector never runs back to back under a fixed cap.
func TestGCLimitFollowsTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ live, want int64 }{
		{0, 700 * mib},
		{200 * mib, 700 * mib},
		{350 * mib, 700 * mib},
		{351 * mib, 702 * mib},
		{900 * mib, 1800 * mib},
	} {
		if got := gcLimit(c.live, 700*mib); got != c.want {
			t.Errorf("gcLimit(%d MiB) = %d MiB, want %d MiB", c.live/mib, got/mib, c.want/mib)
		}
	}
}
