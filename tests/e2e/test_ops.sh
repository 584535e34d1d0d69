#!/usr/bin/env bash
# Operating Outboard end to end: /metrics (parsed strictly), /health and /ready on all four
# plugin sockets, counters that move with real dockerd traffic.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install volume network ipam authz
PROM="python3 $(dirname "$0")/promcheck.py"

sock() { echo "/run/docker/plugins/$(plugin_id "$PREFIX-$1:latest")/outboard-$1.sock"; }
scrape() { curl -sf --unix-socket "$(sock "$1")" http://x/metrics; }
metric() { local p=$1; shift; scrape "$p" | $PROM "$@"; }

for p in volume network ipam authz; do
  check "$p: /health answers live" sh -c "curl -sf --unix-socket '$(sock $p)' http://x/health | grep -q '\"Live\":true'"
  check "$p: /ready answers ready" retry 50 sh -c "curl -sf --unix-socket '$(sock $p)' http://x/ready | grep -q '\"Ready\":true'"
  check "$p: /metrics parses strictly as Prometheus text" sh -c "curl -sf --unix-socket '$(sock $p)' http://x/metrics | $PROM"
  expect_eq "$p: build info names the plugin" 1 "$(metric $p "outboard_build_info{plugin=\"outboard-$p\"}")"
  expect_eq "$p: outboard_ready is 1" 1 "$(metric $p outboard_ready)"
  check "$p: content type is the exposition format" sh -c "curl -sfI --unix-socket '$(sock $p)' http://x/metrics -X GET | grep -qi 'content-type: text/plain; version=0.0.4'"
  expect_eq "$p: POST /metrics is refused (GET only)" 405 "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$(sock $p)" -X POST http://x/metrics)"
done

# Counters move with real traffic through dockerd.
before=$(metric volume 'outboard_requests_total{endpoint="/VolumeDriver.Create"}' 2>/dev/null || echo 0)
check "create a volume through dockerd" docker volume create -d $PREFIX-volume:latest opsv1
expect_eq "volume Create counted" $((before + 1)) "$(metric volume 'outboard_requests_total{endpoint="/VolumeDriver.Create"}')"
expect_fail "bad option refused" "" docker volume create -d $PREFIX-volume:latest -o nosuch=1 opsbad
expect_eq "the refusal is counted as an error" 1 "$(metric volume 'outboard_request_errors_total{endpoint="/VolumeDriver.Create"}')"
expect_eq "latency histogram count equals requests" "$(metric volume 'outboard_requests_total{endpoint="/VolumeDriver.Create"}')" \
  "$(metric volume 'outboard_request_duration_seconds_count{endpoint="/VolumeDriver.Create"}')"
check "store flushes counted" test "$(metric volume outboard_store_flushes_total)" -ge 2
curl -s --unix-socket "$(sock volume)" "http://x/nope-$RANDOM" >/dev/null
curl -s --unix-socket "$(sock volume)" "http://x/nope-$RANDOM" >/dev/null
expect_eq "unknown paths share one label (callers cannot add series)" 2 "$(metric volume 'outboard_requests_total{endpoint="unmatched"}')"

# Plugin gauges follow real state.
expect_eq "volume gauge: one dir volume, unmounted" 1 "$(metric volume 'outboard_volumes{backend="dir",state="unmounted"}')"
check "a container uses the volume" docker run -d --name opsc -v opsv1:/data $IMAGE sleep 300
expect_eq "volume gauge: now mounted" 1 "$(metric volume 'outboard_volumes{backend="dir",state="mounted"}')"
expect_eq "volume gauge: one mount reference" 1 "$(metric volume outboard_volume_mount_references)"
check "container removed" docker rm -f opsc
expect_eq "volume gauge: unmounted again" 0 "$(metric volume outboard_volume_mount_references)"
check "remove the volume" docker volume rm opsv1
expect_eq "volume gauge: no volumes" 0 "$(metric volume outboard_volumes)"

check "network on the outboard IPAM" docker network create --ipam-driver $PREFIX-ipam:latest --subnet 10.98.250.0/24 opsn1
expect_eq "ipam gauge: one pool" 1 "$(metric ipam outboard_ipam_pools)"
expect_eq "ipam gauge: gateway held" 1 "$(metric ipam 'outboard_ipam_addresses_held{pool="10.98.250.0/24"}')"
expect_eq "ipam gauge: 253 free" 253 "$(metric ipam 'outboard_ipam_addresses_free{pool="10.98.250.0/24"}')"
check "network removed" docker network rm opsn1
expect_eq "ipam gauge: no pools" 0 "$(metric ipam outboard_ipam_pools)"

expect_eq "authz gauge: policy valid" 1 "$(metric authz outboard_authz_policy_valid)"
expect_eq "authz gauge: no reload failure" 0 "$(metric authz outboard_authz_policy_reload_failures_total)"
