#!/usr/bin/env bash
# Legacy (v1) plugins: the same binary run as a plain process, found by dockerd through a unix
# socket in /run/docker/plugins, a .spec file (TCP) or a .json file (TCP + TLS with client
# certificates). dockerd activates each with Plugin.Activate and then uses it; on SIGTERM the
# plugin removes its socket and discovery file.
source "$(dirname "$0")/lib.sh"
e2e_start
BIN=$E2E_ROOT/target/x86_64-unknown-linux-gnu/release/outboard-ipam
LEGACY_PIDS=()
cleanup_legacy() { for p in "${LEGACY_PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap 'cleanup_legacy; e2e_teardown' EXIT
tag=$$

# start_legacy NAME ENV...: run the IPAM binary as a legacy plugin named NAME.
start_legacy() {
  local name=$1; shift
  "${E2E_NSENTER[@]}" env NAME="$name" STATE_DIR="$E2E_DIR/legacy-$name" AVOID_HOST_ROUTES=false "$@" "$BIN" \
    >>"$E2E_DIR/legacy-$name.log" 2>&1 &
  LEGACY_PIDS+=($!)
  echo $!
}
# use_ipam NAME SUBNET: a built-in bridge network with our IPAM; a container gets an address in it.
use_ipam() {
  local name=$1 subnet=$2 net="legacy-$1"
  check "$name: network created through the legacy plugin" docker network create --ipam-driver "$name" --subnet "$subnet" "$net"
  local ip
  ip=$(docker run --rm --network "$net" "$IMAGE" sh -c "ip -4 -o addr show eth0" 2>/dev/null | awk '{print $4}')
  expect_contains "$name: container address from the pool $subnet" "${subnet%.*/*}." "$ip"
  check "$name: activated with Plugin.Activate" grep -q '/Plugin.Activate' "$E2E_DIR/legacy-$name.log"
  check "$name: network removed" docker network rm "$net"
}
# stop_legacy PID FILE: SIGTERM; the process exits and FILE disappears.
stop_legacy() {
  kill -TERM "$1"
  check "exits on SIGTERM" retry 50 sh -c "! kill -0 $1"
  check "removed $2 on exit" test ! -e "$2"
}

log "unix socket in /run/docker/plugins"
n1=ob-legacy-unix-$tag
pid=$(start_legacy $n1)
check "$n1: socket appears" retry 50 test -S "$E2E_PLUGIN_DIR/$n1.sock"
use_ipam $n1 10.98.251.0/24
stop_legacy "$pid" "$E2E_PLUGIN_DIR/$n1.sock"

log "TCP with a .spec file"
n2=ob-legacy-tcp-$tag
pid=$(start_legacy $n2 LISTEN=tcp://127.0.0.1:0)
check "$n2: spec file written" retry 50 test -s /etc/docker/plugins/$n2.spec
expect_contains "$n2: spec holds a tcp URL" "tcp://127.0.0.1:" "$(cat /etc/docker/plugins/$n2.spec 2>/dev/null)"
use_ipam $n2 10.98.252.0/24
stop_legacy "$pid" /etc/docker/plugins/$n2.spec

log "TCP + TLS with a .json file and required client certificates"
n3=ob-legacy-tls-$tag
pki=$E2E_DIR/pki; mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=outboard-test-ca -keyout ca.key -out ca.pem
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
  printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out server.pem
  openssl req -newkey rsa:2048 -nodes -subj /CN=dockerd -keyout client.key -out client.csr
  # Extensions make it an X.509 v3 certificate (webpki refuses v1).
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out client.pem
) >/dev/null 2>&1
pid=$(start_legacy $n3 LISTEN=tcp://127.0.0.1:0 TLS_CERT=$pki/server.pem TLS_KEY=$pki/server.key \
  TLS_CLIENT_CA=$pki/ca.pem DAEMON_TLS_CA=$pki/ca.pem DAEMON_TLS_CERT=$pki/client.pem DAEMON_TLS_KEY=$pki/client.key)
check "$n3: json file written" retry 50 test -s /etc/docker/plugins/$n3.json
addr=$(sed -n 's/.*"Addr": "https:\/\/\(.*\)".*/\1/p' /etc/docker/plugins/$n3.json 2>/dev/null)
expect_contains "$n3: json names an https address" "127.0.0.1:" "$addr"
check "$n3: a client without a certificate gets no answer" sh -c "! curl -s --cacert $pki/ca.pem -X POST https://$addr/Plugin.Activate | grep -q Implements"
expect_contains "$n3: a client with a certificate is answered" "IpamDriver" \
  "$(curl -s --cacert $pki/ca.pem --cert $pki/client.pem --key $pki/client.key -X POST https://$addr/Plugin.Activate)"
use_ipam $n3 10.98.253.0/24
stop_legacy "$pid" /etc/docker/plugins/$n3.json
