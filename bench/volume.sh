#!/usr/bin/env bash
# Volume driver vs Docker's built-in `local` driver, side by side on one private dockerd:
#   1. `docker volume create` median
#   2. `docker run --rm -v vol:/x local/busybox true` median (container start with a volume)
#   3. `docker volume ls` median with N volumes of one driver present (1,000 by default)
#   4. the plugin's own `VolumeDriver.List` latency with M volumes (10,000 by default), on its socket
# Prints medians and the ratio ours/local. Targets: (2) within 1.10x; (4) under 50 ms.
#
# Usage: bash bench/volume.sh [runs=21] [ls_volumes=1000] [list_volumes=10000]
# Needs root and the release build (make rootfs PLUGINS=volume is run by e2e_install).
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-21}
LS_N=${2:-1000}
LIST_N=${3:-10000}
PAR=8
source tests/e2e/lib.sh
e2e_start
e2e_install volume
P=$PREFIX-volume:latest
SOCK=$E2E_PLUGIN_DIR/$(plugin_id $P)/outboard-volume.sock

now_us() { echo $(( $(date +%s%N) / 1000 )); }
# median of the numbers on stdin (µs) → ms with one decimal
median_ms() { sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m/1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a/b; else print "n/a" }'; }
timed() { local s; s=$(now_us); "$@" >/dev/null 2>&1 || echo "command failed: $*" >&2; echo $(( $(now_us) - s )); }
row() { printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

# curl_batch METHOD PREFIX FROM TO: one curl per chunk, many requests per connection.
curl_batch() {
  local method=$1 prefix=$2 from=$3 to=$4 chunk c start end i pids=()
  chunk=$(( (to - from + PAR) / PAR ))
  for ((c = 0; c < PAR; c++)); do
    start=$((from + c * chunk)); end=$((start + chunk - 1)); [ "$end" -gt "$to" ] && end=$to
    [ "$start" -gt "$end" ] && continue
    for ((i = start; i <= end; i++)); do
      [ "$i" -gt "$start" ] && echo next
      printf 'url = "http://p/VolumeDriver.%s"\nunix-socket = "%s"\nrequest = "POST"\ndata = "{\\"Name\\":\\"%s%d\\"}"\noutput = "/dev/null"\n' \
        "$method" "$SOCK" "$prefix" "$i"
    done > "$E2E_DIR/batch.$c"
    curl -s -K "$E2E_DIR/batch.$c" &
    pids+=($!)
  done
  # Wait for the curls only (a bare `wait` would also wait for the private dockerd).
  wait "${pids[@]}"
}

log "runs=$RUNS ls_volumes=$LS_N list_volumes=$LIST_N"
printf '\n%-44s %12s %12s %8s\n' "median (ms)" "outboard" "local" "ratio"

# 1. create (interleaved so drift hits both alike)
ours=(); loc=()
for ((i = 0; i < RUNS; i++)); do
  ours+=("$(timed docker volume create -d $P bc_o$i)")
  loc+=("$(timed docker volume create bc_l$i)")
done
row "docker volume create" "$(printf '%s\n' "${ours[@]}" | median_ms)" "$(printf '%s\n' "${loc[@]}" | median_ms)"

# 2. container start with a volume (one warm-up each, then interleaved)
docker volume create -d $P br_o >/dev/null; docker volume create br_l >/dev/null
docker run --rm -v br_o:/x $IMAGE true >/dev/null 2>&1; docker run --rm -v br_l:/x $IMAGE true >/dev/null 2>&1
ours=(); loc=()
# ABBA order: a slow drift (other load on the machine) then hits both sides alike.
for ((i = 0; i < RUNS; i++)); do
  if ((i % 2 == 0)); then
    ours+=("$(timed docker run --rm -v br_o:/x $IMAGE true)")
    loc+=("$(timed docker run --rm -v br_l:/x $IMAGE true)")
  else
    loc+=("$(timed docker run --rm -v br_l:/x $IMAGE true)")
    ours+=("$(timed docker run --rm -v br_o:/x $IMAGE true)")
  fi
done
run_o=$(printf '%s\n' "${ours[@]}" | median_ms); run_l=$(printf '%s\n' "${loc[@]}" | median_ms)
row "docker run --rm -v vol:/x busybox true" "$run_o" "$run_l"
# What the plugin itself spent (its request log has the latency of every call).
plugin_log $P | grep -oE 'path=/VolumeDriver\.(Mount|Unmount) status=200 micros=[0-9]+' \
  | awk '{split($1, p, "."); split($3, m, "="); s[p[2]] += m[2]; n[p[2]]++}
         END {for (k in s) printf "  plugin-side %-8s avg %.2f ms over %d calls\n", k, s[k] / n[k] / 1000, n[k]}'

# Start the ls phases clean.
docker volume ls -q | xargs -r docker volume rm >/dev/null 2>&1

# 3. docker volume ls with LS_N volumes of one driver (the other driver has none)
seq 1 "$LS_N" | xargs -P $PAR -I{} docker volume create bl_l{} >/dev/null
loc=(); for ((i = 0; i < RUNS; i++)); do loc+=("$(timed docker volume ls)"); done
seq 1 "$LS_N" | xargs -P $PAR -I{} docker volume rm bl_l{} >/dev/null
seq 1 "$LS_N" | xargs -P $PAR -I{} docker volume create -d $P bl_o{} >/dev/null
ours=(); for ((i = 0; i < RUNS; i++)); do ours+=("$(timed docker volume ls)"); done
count=$(docker volume ls -q | wc -l)
row "docker volume ls ($count volumes)" "$(printf '%s\n' "${ours[@]}" | median_ms)" "$(printf '%s\n' "${loc[@]}" | median_ms)"
seq 1 "$LS_N" | xargs -P $PAR -I{} docker volume rm bl_o{} >/dev/null

# 4. the plugin's List with LIST_N volumes, straight on its socket (no local equivalent)
s=$(now_us)
curl_batch Create bm "1" "$LIST_N"
create_s=$(( $(now_us) - s ))
list=()
for ((i = 0; i < RUNS; i++)); do
  t=$(curl -s -o "$E2E_DIR/list.json" -w '%{time_total}' --unix-socket "$SOCK" -X POST -d '{}' http://p/VolumeDriver.List)
  list+=("$(awk -v t="$t" 'BEGIN{printf "%d", t*1000000}')")
done
n=$(grep -o '"Name"' "$E2E_DIR/list.json" | wc -l)
# The first List after a change encodes the reply; later ones reuse it until the next change.
first_ms=$(awk -v u="${list[0]}" 'BEGIN{printf "%.1f", u/1000}')
list_ms=$(printf '%s\n' "${list[@]}" | median_ms)
printf '%-44s %12s %12s %8s\n' "plugin List, first after a change ($n vols)" "$first_ms" "-" "-"
printf '%-44s %12s %12s %8s\n' "plugin List over its socket ($n volumes)" "$list_ms" "-" "-"
printf '%-44s %12s\n' "  (made with parallel Create calls, total ms)" "$((create_s / 1000))"
curl_batch Remove bm "1" "$LIST_N"

echo
awk -v o="$run_o" -v l="$run_l" 'BEGIN { r = o / l; printf "container start ratio %.2fx (target <= 1.10x): %s\n", r, (r <= 1.10 ? "met" : "NOT met") }'
awk -v m="$list_ms" -v f="$first_ms" -v n="$n" 'BEGIN { printf "plugin List of %d volumes: median %.1f ms, first after a change %.1f ms (target < 50 ms): %s\n", n, m, f, (m < 50 && f < 50 ? "met" : "NOT met") }'
