#!/usr/bin/env bash
# Durability ordering on the real binaries: the volume, network and IPAM plugins run managed by a
# private dockerd with strace attached to each (all threads); the Docker CLI drives volume
# create/mount/unmount/remove, network and endpoint create/delete and address/pool
# request/release, also concurrently (group commit). tests/e2e/durability_check.py then requires,
# for every 200 reply to a mutating call, an fdatasync/fsync of the store's data file that began
# after the request was read and ended before the reply was written. Subnets 10.98.60-63.x only.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install volume network ipam
V=$PREFIX-volume:latest N=$PREFIX-network:latest I=$PREFIX-ipam:latest
HERE=$(cd "$(dirname "$0")" && pwd)

STRACES=()
trace() { # trace NAME PLUGIN: attach strace to the plugin's process, wait until it is attached
  local pid out=$E2E_DIR/strace.$1
  pid=$(plugin_pid "$2") || return 1
  strace -f -ttt -T -y -s 300 -o "$out" \
    -e trace=read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg,fdatasync,fsync -p "$pid" 2>"$out.err" &
  STRACES+=($!)
  retry 50 sh -c "[ \"\$(awk '/^TracerPid/ {print \$2}' /proc/$pid/status)\" != 0 ]"
}
stop_traces() {
  local s
  for s in "${STRACES[@]}"; do kill -INT "$s" 2>/dev/null; done
  for s in "${STRACES[@]}"; do wait "$s" 2>/dev/null; done
  STRACES=()
}
# Detach strace before the harness tears the plugins down, even when a check fails.
trap 'rc=$?; stop_traces; (exit $rc); e2e_teardown' EXIT

check "strace attached to the volume plugin" trace volume $V
check "strace attached to the network plugin" trace network $N
check "strace attached to the IPAM plugin" trace ipam $I

log "volumes: create, mount/unmount (one after another and 6 at once), remove"
check "volume create d1" docker volume create -d $V d1
check "container writes to d1 (Mount + Unmount)" docker run --rm -v d1:/x $IMAGE sh -c 'echo x > /x/f'
jobs=()
for i in 1 2 3 4 5 6; do
  (docker volume create -d $V "dc$i" >/dev/null && docker run --rm -v "dc$i:/x" $IMAGE true >/dev/null) & jobs+=($!)
done
wait "${jobs[@]}"
check "6 concurrent volumes exist" sh -c "[ \$(docker volume ls -q | grep -c '^dc') = 6 ]"
check "volume rm d1" docker volume rm d1
for i in 1 2 3 4 5 6; do docker volume rm "dc$i" >/dev/null & jobs+=($!); done
wait "${jobs[@]}"

log "networks: our driver with our IPAM, --ip, 6 containers at once, removal"
check "network create (pool + gateway)" docker network create -d $N --ipam-driver $I --subnet 10.98.60.0/24 dn1
check "container with --ip" docker run -d --name dk1 --network dn1 --ip 10.98.60.50 $IMAGE sleep 300
jobs=()
for i in 1 2 3 4 5 6; do docker run -d --name "dkc$i" --network dn1 $IMAGE sleep 300 >/dev/null & jobs+=($!); done
wait "${jobs[@]}"
check "7 containers running" sh -c "[ \$(docker ps -q | wc -l) = 7 ]"
jobs=()
for c in dk1 dkc1 dkc2 dkc3 dkc4 dkc5 dkc6; do docker rm -f "$c" >/dev/null & jobs+=($!); done
wait "${jobs[@]}"
check "network rm" docker network rm dn1
log "IPAM with the built-in bridge driver too (RequestPool/Address without our network driver)"
check "bridge network with our IPAM" docker network create -d bridge --ipam-driver $I --subnet 10.98.61.0/24 dn2
check "container on it" docker run --rm --network dn2 $IMAGE true
check "bridge network rm" docker network rm dn2

stop_traces
# KEEP_STRACE=DIR keeps the raw traces for a look by hand.
[ -n "${KEEP_STRACE:-}" ] && cp "$E2E_DIR"/strace.* "$KEEP_STRACE"/
for p in volume network ipam; do
  check "strace of $p recorded syscalls" test -s "$E2E_DIR/strace.$p"
done
res=$(python3 "$HERE/durability_check.py" "$E2E_DIR/strace.volume" volume \
  /VolumeDriver.Create /VolumeDriver.Remove /VolumeDriver.Mount /VolumeDriver.Unmount \
  -- /VolumeDriver.Get /VolumeDriver.Path /VolumeDriver.List 2>&1); rc=$?
echo "$res" | sed 's/^/    /' >&2
expect_eq "volume: every mutating 200 reply follows a store sync begun after its request" 0 "$rc"
res=$(python3 "$HERE/durability_check.py" "$E2E_DIR/strace.network" network \
  /NetworkDriver.CreateNetwork /NetworkDriver.DeleteNetwork /NetworkDriver.CreateEndpoint \
  /NetworkDriver.DeleteEndpoint -- /NetworkDriver.Join /NetworkDriver.Leave 2>&1); rc=$?
echo "$res" | sed 's/^/    /' >&2
expect_eq "network: every mutating 200 reply follows a store sync begun after its request" 0 "$rc"
res=$(python3 "$HERE/durability_check.py" "$E2E_DIR/strace.ipam" ipam \
  /IpamDriver.RequestPool /IpamDriver.ReleasePool /IpamDriver.RequestAddress \
  /IpamDriver.ReleaseAddress -- /IpamDriver.GetDefaultAddressSpaces /IpamDriver.GetCapabilities 2>&1); rc=$?
echo "$res" | sed 's/^/    /' >&2
expect_eq "ipam: every mutating 200 reply follows a store sync begun after its request" 0 "$rc"
# The checker must catch a missing sync: the same IPAM trace without its syncs has to fail.
grep -v -e 'fdatasync(' -e 'fsync(' -e 'fdatasync resumed' -e 'fsync resumed' "$E2E_DIR/strace.ipam" >"$E2E_DIR/strace.nosync"
python3 "$HERE/durability_check.py" "$E2E_DIR/strace.nosync" ipam-without-syncs /IpamDriver.RequestAddress >"$E2E_DIR/nosync.out" 2>&1
expect_eq "checker fails the same trace with its syncs taken out" 1 "$?"
expect_contains "... naming the reply without a sync" "FAIL ipam-without-syncs /IpamDriver.RequestAddress: request read at" "$(cat "$E2E_DIR/nosync.out")"
