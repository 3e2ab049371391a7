//go:build goexperiment.simd && amd64

package pipeline

import (
	"math/bits"
	"simd/archsimd"
)

// vectorJSON: the CPU has what the vector scans need (AVX2); read once at
// start-up, never written.
var vectorJSON = archsimd.X86.AVX2()

// vec holds the bytes the scans compare with, each in every lane: made
// once (on a CPU with AVX2 only: the broadcast is an AVX2 instruction)
// rather than at every call, where they were a tenth of shortString.
var vec = func() (v struct{ quote, bslash, openB, closeB, openS, closeS archsimd.Uint8x32 }) {
	if vectorJSON {
		v.quote, v.bslash = archsimd.BroadcastUint8x32('"'), archsimd.BroadcastUint8x32('\\')
		v.openB, v.closeB = archsimd.BroadcastUint8x32('{'), archsimd.BroadcastUint8x32('}')
		v.openS, v.closeS = archsimd.BroadcastUint8x32('['), archsimd.BroadcastUint8x32(']')
	}
	return v
}()

// skipNested returns the index just past the object or array at d[i]
// ('{' or '['), or -1, as skipNestedScalar does, 64 bytes a turn: in each
// block the quotes' prefix XOR marks what lies inside strings, and the
// brackets outside them move the depth (a block that cannot bring it to
// zero is counted, not walked). A block holding a backslash, and the last
// bytes, are left to the scalar walk from where the vector one stopped.
func skipNested(d []byte, i int) int {
	if !vectorJSON {
		return skipNestedScalar(d, i, 0, false)
	}
	quote, bslash, openB, closeB, openS, closeS := vec.quote, vec.bslash, vec.openB, vec.closeB, vec.openS, vec.closeS
	depth := 0
	var inStr uint64 // all ones when the block starts inside a string
	j := i
	for j+64 <= len(d) {
		lo := archsimd.LoadUint8x32Slice(d[j : j+32])
		hi := archsimd.LoadUint8x32Slice(d[j+32 : j+64])
		bs := uint64(lo.Equal(bslash).ToBits()) | uint64(hi.Equal(bslash).ToBits())<<32
		if bs != 0 {
			break
		}
		q := uint64(lo.Equal(quote).ToBits()) | uint64(hi.Equal(quote).ToBits())<<32
		// Bit k of s: byte k is inside a string (its opening quote
		// included, its closing one not).
		s := q
		s ^= s << 1
		s ^= s << 2
		s ^= s << 4
		s ^= s << 8
		s ^= s << 16
		s ^= s << 32
		s ^= inStr
		inStr = uint64(int64(s) >> 63)
		op := (uint64(lo.Equal(openB).Or(lo.Equal(openS)).ToBits()) | uint64(hi.Equal(openB).Or(hi.Equal(openS)).ToBits())<<32) &^ s
		cl := (uint64(lo.Equal(closeB).Or(lo.Equal(closeS)).ToBits()) | uint64(hi.Equal(closeB).Or(hi.Equal(closeS)).ToBits())<<32) &^ s
		if n := bits.OnesCount64(cl); depth > n {
			depth += bits.OnesCount64(op) - n
			j += 64
			continue
		}
		for m := op | cl; m != 0; m &= m - 1 {
			k := bits.TrailingZeros64(m)
			if op&(1<<k) != 0 {
				depth++
			} else if depth--; depth == 0 {
				return j + k + 1
			}
		}
		j += 64
	}
	return skipNestedScalar(d, j, depth, inStr != 0)
}

// plainRun returns the index of the first '"' or '\\' at or after d[j],
// len(d) when there is none: 32 bytes a turn.
func plainRun(d []byte, j int) int {
	if !vectorJSON {
		return plainRunSWAR(d, j)
	}
	quote, bslash := vec.quote, vec.bslash
	for j+32 <= len(d) {
		v := archsimd.LoadUint8x32Slice(d[j : j+32])
		if m := v.Equal(quote).Or(v.Equal(bslash)).ToBits(); m != 0 {
			return j + bits.TrailingZeros32(m)
		}
		j += 32
	}
	return plainRunSWAR(d, j)
}

// shortString returns the index just past a string whose contents start
// at d[j] and end, without a backslash, within the next 32 bytes (most
// keys and many values): one compare and no loop, before scanString's
// general path.
func shortString(d []byte, j int) (int, bool) {
	if !vectorJSON || j+32 > len(d) {
		return 0, false
	}
	v := archsimd.LoadUint8x32Slice(d[j : j+32])
	m := v.Equal(vec.quote).Or(v.Equal(vec.bslash)).ToBits()
	if m == 0 {
		return 0, false
	}
	k := j + bits.TrailingZeros32(m)
	return k + 1, d[k] == '"'
}
