//go:build !(goexperiment.simd && amd64)

package pipeline

// skipNested returns the index just past the object or array at d[i]
// ('{' or '['), or -1 (see skipNestedScalar).
func skipNested(d []byte, i int) int { return skipNestedScalar(d, i, 0, false) }

// plainRun returns the index of the first '"' or '\\' at or after d[j],
// len(d) when there is none.
func plainRun(d []byte, j int) int { return plainRunSWAR(d, j) }

// shortString is the vector build's fast path for short strings: none
// here.
func shortString([]byte, int) (int, bool) { return 0, false }
