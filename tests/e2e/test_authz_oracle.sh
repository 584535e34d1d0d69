#!/usr/bin/env bash
# The real daemon as the authz oracle: with the plugin in MODE=audit (decides and logs, allows
# everything) and the shipped example policy, every container-create and volume-create body of
# the attack corpus (authz-plugin/tests/corpus.jsonl) is sent through the real dockerd; what
# dockerd actually applied is inspected (docker inspect, docker volume inspect) and judged by
# tests/e2e/oracle.py, independently of the plugin. Bodies go to the daemon's own API version
# (1.41 on dockerd 20.10, 1.45 on 26.1), so 26.1 reads them as a current client's. The test fails if anything dangerous was
# applied while the audit log says "allow". The daemon is left without the authz setting.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install authz
N=$PREFIX-authz:latest
AUDIT=$E2E_DIR/audit/audit.log
SOCK=$E2E_DIR/docker.sock
ORACLE="python3 $E2E_ROOT/tests/e2e/oracle.py"
reloads() { grep -c 'Reloaded configuration' "$DOCKERD_LOG"; }
set_daemon_authz() {
  local before; before=$(reloads)
  if [ "$1" = on ]; then printf '{"authorization-plugins":["%s"]}\n' "$N" > "$E2E_DIR/daemon.json"
  else echo '{}' > "$E2E_DIR/daemon.json"; fi
  kill -HUP "$DOCKERD_PID"
  retry 50 sh -c "[ \$(grep -c 'Reloaded configuration' '$DOCKERD_LOG') -gt $before ]"
}
check "audit mode" sh -c "docker plugin disable $N >/dev/null && docker plugin set $N MODE=audit && docker plugin enable $N >/dev/null"
check "authz on" set_daemon_authz on

# Links planted under the allowed root, as in the corpus (authz-plugin/tests/hostfs.json): the
# kernel follows them when dockerd binds, the plugin resolves them on the host.
srv_made=; [ -d /srv/containers ] || srv_made=1
$ORACLE plant "$E2E_ROOT/authz-plugin/tests/hostfs.json" > "$E2E_DIR/planted"
log "planted under /srv/containers: $(tr '\n' ' ' < "$E2E_DIR/planted")"

# What a plain container gets from this daemon: the oracle's baseline.
docker create --name orcbase "$IMAGE" true >/dev/null && docker inspect orcbase > "$E2E_DIR/base" && docker rm orcbase >/dev/null
created=0 dangerous=0 judged=0
declare -A VERDICT WHAT
while IFS=$'\t' read -r -u 3 kind n name body; do
  if [ "$kind" = container ]; then
    code=$(curl -s -o "$E2E_DIR/resp" -w '%{http_code}' --unix-socket "$SOCK" -X POST \
      -H 'Content-Type: application/json' -d "$body" "http://d/v$E2E_API/containers/create?name=orc$n&oracle=$n")
    [ "$code" = 201 ] || continue
    created=$((created + 1))
    docker inspect "orc$n" > "$E2E_DIR/insp" 2>/dev/null
    if why=$($ORACLE judge-container "$E2E_DIR/insp" "$E2E_DIR/base"); then VERDICT[$n]=safe; else VERDICT[$n]=dangerous; WHAT[$n]="$name: $why"; dangerous=$((dangerous + 1)); fi
    docker rm -f "orc$n" >/dev/null 2>&1
  else
    code=$(curl -s -o "$E2E_DIR/resp" -w '%{http_code}' --unix-socket "$SOCK" -X POST \
      -H 'Content-Type: application/json' -d "$body" "http://d/v$E2E_API/volumes/create?oracle=$n")
    [ "$code" = 201 ] || continue
    created=$((created + 1))
    vname=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Name"])' "$E2E_DIR/resp")
    docker volume inspect "$vname" > "$E2E_DIR/insp" 2>/dev/null
    if why=$($ORACLE judge-volume "$E2E_DIR/insp"); then VERDICT[$n]=safe; else VERDICT[$n]=dangerous; WHAT[$n]="$name: $why"; dangerous=$((dangerous + 1)); fi
    docker volume rm -f "$vname" >/dev/null 2>&1
  fi
done 3< <($ORACLE requests "$E2E_ROOT/authz-plugin/tests/corpus.jsonl")
log "$created bodies created by dockerd, $dangerous of them with a dangerous effective setting"
check "dockerd applied a good share of the corpus (audit mode lets everything through)" test "$created" -gt 50
check "and some of it dangerously (the oracle sees what dockerd applied)" test "$dangerous" -gt 20
sleep 0.5   # allow lines reach the audit file in 200 ms batches
for n in "${!VERDICT[@]}"; do
  [ "${VERDICT[$n]}" = dangerous ] || continue
  judged=$((judged + 1))
  line=$(grep -F "oracle=$n\"" "$AUDIT" | tail -1)
  case "$line" in
    *'"decision":"would-deny"'*) E2E_PASSES=$((E2E_PASSES + 1)) ;;
    *) E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL dangerous and allowed: %s (audit: %s)\n' "${WHAT[$n]}" "${line:-none}" >&2 ;;
  esac
done
log "$judged dangerous effective settings, each checked against the plugin's audit decision"
check "authz off at the end" set_daemon_authz off
# Remove what was planted, and the root itself when this test made it (dockerd creates missing
# bind sources under it).
while read -r p; do [ -n "$p" ] && { [ -L "$p" ] && rm -f "$p" || rmdir "$p" 2>/dev/null; }; done < "$E2E_DIR/planted"
[ -n "$srv_made" ] && rm -rf /srv/containers
check "daemon usable without authz" docker run --rm "$IMAGE" true
