//go:build race

package archive

// raceEnabled makes the slowest exhaustive tests sample instead: the race
// detector makes them ten times slower.
const raceEnabled = true
