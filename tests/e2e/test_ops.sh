#!/usr/bin/env bash
# Operating Outboard end to end: /metrics (parsed strictly), /health and /ready on all four
# plugin sockets, counters and gauges that move with real dockerd traffic; the `outboard`
# command (installed by make into a prefix) against the real daemon: status, metrics, volume
# ls/inspect/release-mounts, ipam pools/addresses/check/release, network check, authz
# stats/check/explain; firewall self-healing after the table is deleted/flushed from outside.
# Subnets: 10.98.250.0/24 to 10.98.254.0/24 only.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install volume network ipam authz
PROM="python3 $(dirname "$0")/promcheck.py"

# Sockets live where this daemon puts them (26.1: its private mount namespace's /run, seen
# from here through $E2E_PLUGIN_DIR); the `outboard` command is pointed there the same way.
export OUTBOARD_PLUGIN_ROOT=$E2E_PLUGIN_DIR
sock() { echo "$E2E_PLUGIN_DIR/$(plugin_id "$PREFIX-$1:latest")/outboard-$1.sock"; }
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

# ---------------------------------------------------------------- the `outboard` command
check "make cli-install into a prefix" make -s -C "$E2E_ROOT" cli-install PREFIX="$E2E_DIR/prefix"
OB=$E2E_DIR/prefix/bin/outboard
check "outboard is a static binary" sh -c "ldd '$OB' 2>&1 | grep -Eq 'not a dynamic|statically linked'"
out=$($OB status); rc=$?
expect_eq "status: exit 0 when all are ready" 0 "$rc"
expect_eq "status: four plugins enabled and ready" 4 "$(grep -c ' true  *true ' <<<"$out")"
expect_eq "status --json: four ready" 4 "$($OB status --json | jq '[.[] | select(.ready)] | length')"
expect_contains "status shows the volume summary" "volumes," "$out"
expect_contains "metrics: all four scraped" "outboard_build_info{plugin=\"outboard-authz\"" "$($OB metrics)"
check "metrics --json: volume samples" sh -c "$OB metrics volume --json | jq -e '.volume | length > 0'"
$OB metrics nosuch >/dev/null 2>&1; expect_eq "metrics of an unknown kind: usage exit 2" 2 "$?"
$OB frobnicate >/dev/null 2>&1; expect_eq "unknown command: exit 2" 2 "$?"

# volume: a live container blocks release; a mount dockerd never released is visible and cleared.
check "volume for a container" docker volume create -d $PREFIX-volume:latest opsv2
check "container using it" docker run -d --name opsc2 -v opsv2:/data $IMAGE sleep 300
expect_contains "volume ls lists it mounted" "opsv2" "$($OB volume ls | grep ' yes ')"
expect_contains "volume inspect names the container" "opsc2  running" "$($OB volume inspect opsv2)"
expect_fail "release-mounts refused while a container runs" "in use by opsc2" $OB volume release-mounts opsv2
$OB volume release-mounts opsv2 >/dev/null 2>&1; expect_eq "refusal exit code 1" 1 "$?"
expect_eq "refusal changed nothing" 1 "$($OB volume inspect opsv2 --json | jq '.mounts | add')"
check "volume without a container" docker volume create -d $PREFIX-volume:latest opsv3
check "a Mount that dockerd never unmounts (sent to the socket)" sh -c "curl -sf --unix-socket '$(sock volume)' -X POST -d '{\"Name\":\"opsv3\",\"ID\":\"stuck-caller\"}' http://x/VolumeDriver.Mount"
out=$($OB volume inspect opsv3); rc=$?
expect_eq "inspect of a stuck volume: exit 1" 1 "$rc"
expect_contains "inspect says STUCK" "STUCK: 1 mount reference" "$out"
expect_contains "inspect names the caller" "stuck-caller" "$out"
expect_contains "release-mounts clears it" "released 1 mount reference(s), unmounted" "$($OB volume release-mounts opsv3)"
expect_eq "no references left" "0" "$($OB volume inspect opsv3 --json | jq '.mounts | length')"
check "volume removable afterwards" docker volume rm opsv3
check "container removed" docker rm -f opsc2
check "volume removed" docker volume rm opsv2

# ipam: pools, addresses with their dockerd holders, leaks found and released, live ones kept.
check "network on the outboard IPAM" docker network create --ipam-driver $PREFIX-ipam:latest --subnet 10.98.252.0/24 opsn2
check "container on it" docker run -d --name opsc3 --network opsn2 $IMAGE sleep 300
cip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' opsc3)
expect_contains "ipam pools lists the pool" "10.98.252.0/24" "$($OB ipam pools)"
expect_contains "ipam addresses names the container" "$cip  container  opsn2 opsc3" "$($OB ipam addresses 10.98.252.0/24)"
expect_contains "ipam check: nothing leaked" "no leaked" "$($OB ipam check)"
ipost() { curl -sf --unix-socket "$(sock ipam)" -X POST -d "$2" "http://x/IpamDriver.$1"; }
check "a pool requested but never used by a network (crash before the ack)" ipost RequestPool '{"AddressSpace":"OutboardLocal","Pool":"10.98.253.0/24","Options":{},"V6":false}'
pid2=$(curl -sf --unix-socket "$(sock ipam)" 'http://x/outboard/v1/pools?pool=10.98.252.0/24' | jq -r '.pools[0].id')
leak=$(ipost RequestAddress "{\"PoolID\":\"$pid2\",\"Address\":\"\",\"Options\":{}}" | jq -r .Address | cut -d/ -f1)
check "an address held without an endpoint" test -n "$leak"
export OUTBOARD_MIN_AGE=0
out=$($OB ipam check); rc=$?
expect_eq "ipam check: exit 1 on leaks" 1 "$rc"
expect_contains "the leaked pool is reported" "10.98.253.0/24" "$out"
expect_contains "the leaked address is reported" "$leak" "$out"
check "the container's address is not reported" sh -c "! $OB ipam check | grep -qw '$cip'"
expect_contains "release --dry-run says what it would do" "would release" "$($OB ipam release --dry-run)"
expect_eq "dry run released nothing" 2 "$($OB ipam pools --json | jq length)"
expect_contains "release releases" "released" "$($OB ipam release)"
expect_contains "nothing leaked afterwards" "no leaked" "$($OB ipam check)"
expect_eq "the live pool stays" 1 "$($OB ipam pools --json | jq length)"
expect_contains "the container's address stays held" "$cip" "$($OB ipam addresses 10.98.252.0/24)"
unset OUTBOARD_MIN_AGE
check "container removed" docker rm -f opsc3
check "network removed" docker network rm opsn2

# network check and firewall self-healing.
check "network on the outboard driver" docker network create -d $PREFIX-network:latest --subnet 10.98.254.0/24 opsn3
check "container on it" docker run -d --name opsc4 --network opsn3 $IMAGE sleep 300
out=$($OB network check); rc=$?
expect_eq "network check: exit 0" 0 "$rc"
expect_contains "network check: no problems" "no problems found" "$out"
TABLE=$($OB network check --json | jq -r .table)
check "our table is in the kernel" nft list table inet "$TABLE"
rules() { nft -a list table inet "$TABLE" 2>/dev/null | grep -c '# handle' ; }
want=$(rules)
heals0=$(metric network outboard_network_firewall_heals_total)
check "delete our table from outside" nft delete table inet "$TABLE"
check "the table comes back by itself" retry 50 nft list table inet "$TABLE"
check "with all its rules" retry 50 sh -c "[ \$(nft -a list table inet '$TABLE' | grep -c '# handle') = $want ]"
expect_eq "the heal is counted" $((heals0 + 1)) "$(metric network outboard_network_firewall_heals_total)"
check "and logged" retry 25 sh -c "grep 'plugin=$(plugin_id $PREFIX-network:latest)' '$DOCKERD_LOG' | grep -q 'changed from outside'"
check "flush our table from outside" nft flush table inet "$TABLE"
check "the rules come back" retry 50 sh -c "[ \$(nft -a list table inet '$TABLE' | grep -c '# handle') = $want ]"
expect_eq "second heal counted" $((heals0 + 2)) "$(metric network outboard_network_firewall_heals_total)"
sleep 1
expect_eq "our own applies never trigger a heal (no loop)" $((heals0 + 2)) "$(metric network outboard_network_firewall_heals_total)"
bridge=$($OB network check --json | jq -r '.networks[0].bridge')
check "delete the bridge from outside" ip link del "$bridge"
out=$($OB network check); rc=$?
expect_eq "network check: exit 1 on a missing bridge" 1 "$rc"
expect_contains "network check names it" "bridge $bridge is missing" "$out"
check "container removed" docker rm -f opsc4
check "network removed" docker network rm opsn3

# authz: stats, policy check with the running plugin's compiler, explain.
expect_contains "authz stats lists the rules" "no-privileged" "$($OB authz stats)"
out=$($OB authz check "$E2E_DIR/policy/policy.toml"); rc=$?
expect_eq "authz check of the installed policy: exit 0" 0 "$rc"
expect_contains "authz check: valid" "valid" "$out"
printf '[[rule]]\nname = "x"\neffect = "maybe"\n' > "$E2E_DIR/bad.toml"
out=$($OB authz check "$E2E_DIR/bad.toml" 2>&1); rc=$?
expect_eq "authz check of a broken policy: exit 1" 1 "$rc"
expect_contains "authz check names the line" "bad.toml:line 3" "$out"
decisions() { $OB authz stats --json | jq '[.Decisions[]] | add // 0'; }
d0=$(decisions)
expect_contains "explain: a privileged create is denied by its rule" "deny  rule no-privileged" \
  "$($OB authz explain POST /v1.41/containers/create '{"Image":"x","HostConfig":{"Privileged":true}}')"
expect_contains "explain: listing containers is allowed" "decision allow" "$($OB authz explain GET /v1.41/containers/json)"
expect_eq "explain counted no decision" "$d0" "$(decisions)"

# authz audit file: logrotate `create` (moved away), `copytruncate`, SIGHUP, and the size cap.
AUDIT=$E2E_DIR/audit/audit.log
deny_req() {
  curl -sf --unix-socket "$(sock authz)" -X POST http://x/AuthZPlugin.AuthZReq -d \
    "{\"RequestMethod\":\"POST\",\"RequestUri\":\"/v1.41/containers/create\",\"RequestHeaders\":{\"Content-Type\":\"application/json\"},\"RequestBody\":\"$(printf '{"Image":"x","HostConfig":{"Privileged":true}}' | base64 -w0)\"}" | grep -q '"Allow":false'
}
lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
check "a denial (dockerd's AuthZReq body, sent to the socket)" deny_req
check "is in the audit file" retry 25 sh -c "grep -q no-privileged '$AUDIT'"
n0=$(lines "$AUDIT")
check "logrotate create: file moved away" mv "$AUDIT" "$AUDIT.1"
check "next denial" deny_req
check "lands in a new file at the path" retry 25 test "$(lines "$AUDIT")" = 1
expect_eq "the moved file got nothing more" "$n0" "$(lines "$AUDIT.1")"
check "logrotate copytruncate: copy" cp "$AUDIT" "$AUDIT.2"
check "and truncate" truncate -s 0 "$AUDIT"
check "next denial" deny_req
check "written at the start of the truncated file (no hole)" retry 25 sh -c "[ \$(wc -l < '$AUDIT') = 1 ] && [ \$(tr -d '\\000' < '$AUDIT' | wc -c) = \$(wc -c < '$AUDIT') ]"
check "SIGHUP: moved away, then HUP" sh -c "mv '$AUDIT' '$AUDIT.3' && kill -HUP $(plugin_pid $PREFIX-authz:latest)"
check "plugin still answers after SIGHUP" deny_req
check "new file after SIGHUP" retry 25 test "$(lines "$AUDIT")" = 1
# Cap at 12.5 lines: the 1 line there plus 20 more rotate exactly once (.1 keeps one generation).
L=$(stat -c %s "$AUDIT"); CAP=$((L * 12 + L / 2))
check "disable authz to set a size cap" docker plugin disable $PREFIX-authz:latest
check "AUDIT_MAX_BYTES set" docker plugin set $PREFIX-authz:latest AUDIT_MAX_BYTES=$CAP
check "enable" docker plugin enable $PREFIX-authz:latest
rm -f "$AUDIT.1"
for i in $(seq 20); do deny_req; done
check "the capped file was rotated to .1" test -s "$AUDIT.1"
check "the live file stays under the cap" test "$(stat -c %s "$AUDIT")" -lt "$CAP"
expect_eq "no line lost across the rotation" 21 "$(( $(lines "$AUDIT") + $(lines "$AUDIT.1") ))"
