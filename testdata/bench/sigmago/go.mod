module github.com/ecscorr/ecscorr/testdata/bench/sigmago

go 1.26.8

require (
	github.com/bradleyjkemp/sigma-go v0.6.6
	github.com/ecscorr/ecscorr v0.0.0
)

require (
	github.com/BobuSumisu/aho-corasick v1.0.3 // indirect
	github.com/PaesslerAG/gval v1.0.0 // indirect
	github.com/PaesslerAG/jsonpath v0.1.1 // indirect
	github.com/alecthomas/participle v0.7.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/goccy/go-json v0.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.4 // indirect
	golang.org/x/time v0.14.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

// ecscorr's matcher is compared from this checkout, never from a registry.
replace github.com/ecscorr/ecscorr => ../../..
