package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts a CPU profile and an execution trace into the files
// named (empty: none) for command cmd; stop ends both. It reports false,
// having said why on stderr, when one cannot start.
func startProfiles(cmd, cpuFile, traceFile string, stderr io.Writer) (stop func(), ok bool) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	fail := func(err error) (func(), bool) {
		fmt.Fprintf(stderr, "ecscorr %s: %v\n", cmd, err)
		stop()
		return func() {}, false
	}
	if cpuFile != "" {
		f, err := os.Create(cpuFile)
		if err != nil {
			return fail(err)
		}
		stops = append(stops, func() { f.Close() })
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		stops = append(stops, pprof.StopCPUProfile)
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			return fail(err)
		}
		stops = append(stops, func() { f.Close() })
		if err := trace.Start(f); err != nil {
			return fail(err)
		}
		stops = append(stops, trace.Stop)
	}
	return stop, true
}
