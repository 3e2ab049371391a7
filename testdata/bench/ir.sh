#!/usr/bin/env bash
# bench-ir: instructions executed (valgrind's cachegrind, no cache model)
# by the decode floor and by replay with the pack and with the 57 SigmaHQ
# rules, over the first N objects (default 40) of the Invictus corpus
# scaled x345. A shared machine's wall time moves 10-30 % between runs;
# instruction counts move 1-2 % (the collector), so an A/B of two builds that differ
# by 2-5 % is read here (then confirmed on the wall clock, as vector code
# and cache misses do not show in a count). One P and no asynchronous
# preemption: spinning threads and preemption signals would make the
# count vary (and callgrind crash).
#
#	./testdata/bench/ir.sh /tmp/ecscorr-invictus ./bin [N]
set -euo pipefail
dir=${1:-/tmp/ecscorr-invictus}
bin=${2:-./bin}
n=${3:-40}
rules=correlate/sigma/testdata/aws_cloudtrail
command -v valgrind >/dev/null || { echo "bench-ir needs valgrind (apt-get install valgrind)" >&2; exit 1; }
slice=$(mktemp -d)
trap 'rm -rf "$slice"' EXIT
# (head closes the pipe early: not a failure)
files=$(cd "$dir" && find . -name '*.json.gz' | sort | head -n "$n") || true
for f in $files; do
	mkdir -p "$slice/$(dirname "$f")" && cp "$dir/$f" "$slice/$f"
done
ir() {
	GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
		awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
}
floor=$(ir "$bin/floor" -workers 2 "$slice")
pack=$(ir "$bin/ecscorr" replay --quiet --out /dev/null "$slice")
sigma=$(ir "$bin/ecscorr" replay --quiet --rules builtin --rules "$rules" --out /dev/null "$slice")
awk -v n="$n" -v f="$floor" -v p="$pack" -v s="$sigma" 'BEGIN {
	printf "%d objects: floor %.3f G instructions, pack %.3f G (%.2fx floor), pack + 57 SigmaHQ rules %.3f G (%.2fx floor)\n", n, f/1e9, p/1e9, f/p, s/1e9, f/s
}'
