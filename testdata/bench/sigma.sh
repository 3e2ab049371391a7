#!/usr/bin/env bash
# bench-sigma: on the Invictus CloudTrail records scaled x345 (1,000,500
# records), the decode floor (gunzip + decode, 2 workers) and replay with
# the built-in pack alone and with the 57 SigmaHQ rules, one after the
# other in the same run, and replay's rate as a fraction of the floor's.
set -euo pipefail
dir=${1:-/tmp/ecscorr-invictus}
bin=${2:-./bin}
rules=correlate/sigma/testdata/aws_cloudtrail
wall() { # wall seconds and peak RSS (KiB) of a command, its output dropped
	/usr/bin/time -f '%e %M' -o /tmp/ecscorr-bench-time "$@" >/dev/null 2>&1
	cat /tmp/ecscorr-bench-time
}
# The floor runs first: read the files once so that it does not pay a cold
# page cache the replays after it do not (that made it look 30 % slower).
find "$dir" -name '*.json.gz' -exec cat {} + >/dev/null
read -r floor_s floor_kib < <(wall "$bin/floor" -workers 2 "$dir")
read -r pack_s pack_kib < <(wall "$bin/ecscorr" replay --quiet --out /dev/null "$dir")
read -r sigma_s sigma_kib < <(wall "$bin/ecscorr" replay --quiet --rules builtin --rules "$rules" --out /dev/null "$dir")
n=$(find "$dir" -name '*.json.gz' | wc -l)
awk -v f="$floor_s" -v p="$pack_s" -v s="$sigma_s" -v pk="$pack_kib" -v sk="$sigma_kib" -v n="$n" 'BEGIN {
	r = 1000500
	printf "corpus: %d objects, %d CloudTrail records\n", n, r
	printf "floor (gunzip + decode, 2 workers): %6.2f s  %8.0f records/s\n", f, r/f
	printf "replay, built-in pack:              %6.2f s  %8.0f records/s  %.2fx floor  peak RSS %d MiB\n", p, r/p, f/p, pk/1024
	printf "replay, pack + 57 SigmaHQ rules:    %6.2f s  %8.0f records/s  %.2fx floor  peak RSS %d MiB\n", s, r/s, f/s, sk/1024
}'
