//go:build race

package engine

// raceEnabled: the race detector makes the heavier tests slow and heap
// measurements meaningless, so they are cut down under it.
const raceEnabled = true
