package ruletest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ecscorr/ecscorr/pipeline"
)

// sample is one value of an expanded series; gap marks `_`.
type sample struct {
	v   float64
	gap bool
}

// expandValues parses promtool's expanding notation: "a", "axn" (n+1
// times), "a+bxn" / "a-bxn" (n+1 values stepping by b), "_" and "_xn".
func expandValues(s string) ([]sample, error) {
	var out []sample
	for _, tok := range strings.Fields(s) {
		base, times, hasX := strings.Cut(tok, "x")
		n := 0
		if hasX {
			var err error
			n, err = strconv.Atoi(times)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("values: bad repeat in %q", tok)
			}
		}
		if base == "_" {
			for range n + 1 {
				out = append(out, sample{gap: true})
			}
			continue
		}
		start, step := base, 0.0
		// a+b or a-b (a may itself be negative: skip a leading sign).
		if i := strings.LastIndexAny(base, "+-"); i > 0 && hasX {
			st, err := strconv.ParseFloat(base[i+1:], 64)
			if err != nil {
				return nil, fmt.Errorf("values: bad step in %q", tok)
			}
			if base[i] == '-' {
				st = -st
			}
			start, step = base[:i], st
		}
		a, err := strconv.ParseFloat(start, 64)
		if err != nil {
			return nil, fmt.Errorf("values: bad number in %q", tok)
		}
		if !hasX {
			out = append(out, sample{v: a})
			continue
		}
		for i := range n + 1 {
			out = append(out, sample{v: a + float64(i)*step})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("values: empty")
	}
	return out, nil
}

// seriesRecords renders a series as Container Insights Task performance
// events (EMF JSON), one per non-gap sample.
func seriesRecords(s *InputSeries, start time.Time, v vars) ([]record, error) {
	taskS, err := v.expand(s.Task)
	if err != nil {
		return nil, err
	}
	task, ok := pipeline.ParseTaskARN(taskS)
	if !ok || task.Cluster == "" {
		return nil, fmt.Errorf("series task %q: want a long-format ECS task ARN", taskS)
	}
	samples, err := expandValues(s.Values)
	if err != nil {
		return nil, err
	}
	interval := time.Duration(s.Interval)
	if interval <= 0 {
		interval = time.Minute
	}
	family := s.Family
	if family == "" {
		family = "test"
	}
	cpuRes, memRes := s.CPUReserved, s.MemReserved
	if cpuRes <= 0 {
		cpuRes = 1024
	}
	if memRes <= 0 {
		memRes = 2048
	}
	var out []record
	for i, sm := range samples {
		if sm.gap {
			continue
		}
		at := start.Add(time.Duration(s.Start) + time.Duration(i)*interval)
		cpu, mem := 0.1*cpuRes, 0.25*memRes
		switch s.Series {
		case "cpu_pct":
			cpu = sm.v / 100 * cpuRes
		case "mem_pct":
			mem = sm.v / 100 * memRes
		}
		ms := at.UnixMilli()
		ev := map[string]any{
			"Version":                "0",
			"Type":                   "Task",
			"TaskId":                 task.ID,
			"TaskDefinitionFamily":   family,
			"TaskDefinitionRevision": "1",
			"ClusterName":            task.Cluster,
			"AccountID":              task.Account,
			"Region":                 task.Region,
			"KnownStatus":            "RUNNING",
			"LaunchType":             "FARGATE",
			"CreatedAt":              start.UnixMilli(),
			"StartedAt":              start.UnixMilli(),
			"Timestamp":              ms,
			"CpuUtilized":            round3(cpu),
			"CpuReserved":            cpuRes,
			"MemoryUtilized":         round3(mem),
			"MemoryReserved":         memRes,
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace": "ECS/ContainerInsights",
				"Metrics": []any{
					map[string]any{"Name": "CpuUtilized", "Unit": "None"},
					map[string]any{"Name": "CpuReserved", "Unit": "None"},
					map[string]any{"Name": "MemoryUtilized", "Unit": "Megabytes"},
					map[string]any{"Name": "MemoryReserved", "Unit": "Megabytes"},
				},
				"Dimensions": []any{[]any{"ClusterName"}, []any{"ClusterName", "TaskDefinitionFamily"}},
			}},
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, record{raw: raw, at: at, file: "series " + s.Series, line: s.line, idx: i})
	}
	return out, nil
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
