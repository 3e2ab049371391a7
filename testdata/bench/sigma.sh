#!/usr/bin/env bash
# bench-sigma: on the Invictus CloudTrail records scaled x345 (1,000,500
# records), the decode floor (gunzip + decode, 2 workers) and replay with
# the built-in pack alone and with the 57 SigmaHQ rules, and replay's rate
# as a fraction of the floor's.
#
# A shared machine's speed drifts by 10-20 % within minutes (a neighbour
# taking a core can cost a run 40 %), so the three run one after the other
# in ROUNDS rounds (default 3): each round's ratios are printed, and the
# summary compares each program's best time (the least disturbed run of
# each). CPU seconds (user + system) are printed beside: they move far
# less with a neighbour's load than wall time does, so their ratio is
# the steadier reading of what the rules cost.
set -euo pipefail
dir=${1:-/tmp/ecscorr-invictus}
bin=${2:-./bin}
rounds=${ROUNDS:-3}
rules=correlate/sigma/testdata/aws_cloudtrail
wall() { # wall seconds, peak RSS (KiB) and CPU seconds of a command, its output dropped
	/usr/bin/time -f '%e %M %U %S' -o /tmp/ecscorr-bench-time "$@" >/dev/null 2>&1
	awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' /tmp/ecscorr-bench-time
}
# Read the files once so that the first run does not pay a cold page cache
# the runs after it do not (that made the floor look 30 % slower).
find "$dir" -name '*.json.gz' -exec cat {} + >/dev/null
n=$(find "$dir" -name '*.json.gz' | wc -l)
echo "corpus: $n objects, 1000500 CloudTrail records; $rounds rounds of floor, pack, pack + 57 SigmaHQ rules"
results=()
for ((i = 1; i <= rounds; i++)); do
	read -r floor_s floor_kib floor_cpu < <(wall "$bin/floor" -workers 2 "$dir")
	read -r pack_s pack_kib pack_cpu < <(wall "$bin/ecscorr" replay --quiet --out /dev/null "$dir")
	read -r sigma_s sigma_kib sigma_cpu < <(wall "$bin/ecscorr" replay --quiet --rules builtin --rules "$rules" --out /dev/null "$dir")
	awk -v i="$i" -v f="$floor_s" -v p="$pack_s" -v s="$sigma_s" -v fc="$floor_cpu" -v pc="$pack_cpu" -v sc="$sigma_cpu" 'BEGIN {
		printf "round %d: floor %.2f s (%.2f s CPU), pack %.2f s (%.2f s CPU; %.2fx floor), pack + Sigma %.2f s (%.2f s CPU; %.2fx floor)\n", i, f, fc, p, pc, f/p, s, sc, f/s
	}'
	results+=("$floor_s $pack_s $sigma_s $pack_kib $sigma_kib $floor_cpu $pack_cpu $sigma_cpu")
done
printf '%s\n' "${results[@]}" | awk '
	NR == 1 || $1 < f { f = $1 }
	NR == 1 || $2 < p { p = $2 }
	NR == 1 || $3 < s { s = $3 }
	$4 > pk { pk = $4 }
	$5 > sk { sk = $5 }
	NR == 1 || $6 < fc { fc = $6 }
	NR == 1 || $7 < pc { pc = $7 }
	NR == 1 || $8 < sc { sc = $8 }
	END {
		r = 1000500
		printf "best of %d rounds:\n", NR
		printf "floor (gunzip + decode, 2 workers): %6.2f s  %8.0f records/s\n", f, r/f
		printf "replay, built-in pack:              %6.2f s  %8.0f records/s  %.2fx floor  peak RSS %d MiB\n", p, r/p, f/p, pk/1024
		printf "replay, pack + 57 SigmaHQ rules:    %6.2f s  %8.0f records/s  %.2fx floor  peak RSS %d MiB\n", s, r/s, f/s, sk/1024
		printf "least CPU (user + system): floor %.2f s, pack %.2f s (%.2fx floor), pack + Sigma %.2f s (%.2fx floor)\n", fc, pc, fc/pc, sc, fc/sc
	}'
