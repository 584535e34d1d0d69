#!/usr/bin/env bash
# Authorization plugin: configured as the private daemon's authorization plugin with the shipped
# example policy, it denies the dangerous CLI requests and every raw-socket spelling of them,
# lets ordinary work through, protects itself, supports a dry-run mode, and takes policy edits
# without a restart (rejecting broken ones). The daemon is always left without the authz setting.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install authz

N=$PREFIX-authz:latest
POLICY=$E2E_DIR/policy/policy.toml
AUDIT=$E2E_DIR/audit/audit.log
SOCK=$E2E_DIR/docker.sock
DENIED="authorization denied by plugin $N"
CHECK_BIN=$E2E_ROOT/target/x86_64-unknown-linux-gnu/release/outboard-authz
probe_n=0

reloads() { grep -c 'Reloaded configuration' "$DOCKERD_LOG"; }
# set_daemon_authz on|off: write the private daemon's config, SIGHUP, wait for the reload.
set_daemon_authz() {
  local before; before=$(reloads)
  if [ "$1" = on ]; then
    printf '{"authorization-plugins":["%s"]}\n' "$N" > "$E2E_DIR/daemon.json"
  else
    echo '{}' > "$E2E_DIR/daemon.json"
  fi
  kill -HUP "$DOCKERD_PID"
  retry 50 sh -c "[ \$(grep -c 'Reloaded configuration' '$DOCKERD_LOG') -gt $before ]"
}
# probe: a harmless real route (volume inspect of a missing volume); true when the plugin saw it.
probe() {
  probe_n=$((probe_n + 1))
  local name=outboard-probe-$$-$probe_n
  curl -s --unix-socket "$SOCK" "http://d/v1.41/volumes/$name" >/dev/null
  # Allow lines reach the audit file in batches (200 ms).
  retry 10 grep -q "$name" "$AUDIT"
}
authz_on() { set_daemon_authz on && retry 10 probe; }
authz_off() { set_daemon_authz off; }
plugin_sock() {
  local id; id=$(plugin_id "$N")
  find -H "$E2E_DIR/exec" "$E2E_PLUGIN_DIR" -path "*$id*" -name 'outboard-authz.sock' 2>/dev/null | head -1
}
stats() { curl -s --unix-socket "$(plugin_sock)" http://p/outboard/v1/stats; }
# raw_create CURL-ARGS...: POST a container create straight to the daemon socket; prints
# "<status> <body>".
raw() { curl -s --unix-socket "$SOCK" -w ' %{http_code}' "$@"; }
privileged_count() { # obpriv, an administrator's container made while authz was off, aside
  docker ps -aq --filter name=^/obpriv$ >"$E2E_DIR/obpriv.id"
  docker ps -aq | grep -vxf "$E2E_DIR/obpriv.id" | xargs -r docker inspect -f '{{.HostConfig.Privileged}}' 2>/dev/null | grep -c true
}

check "example policy installed on the host" test -s "$POLICY"
check "check command accepts the example policy" "$CHECK_BIN" check "$POLICY"
check "authz enabled in the daemon (SIGHUP)" authz_on

# --- the CLI: denials with the rule's message ---------------------------------------------------
expect_fail "run --privileged denied" "$DENIED: privileged containers" docker run --rm --privileged "$IMAGE" true
expect_fail "-v /:/host denied" "$DENIED: bind mounts of host paths outside" docker run --rm -v /:/host "$IMAGE" true
expect_fail "--mount type=bind,src=/ denied" "$DENIED: bind mounts of host paths outside" docker run --rm --mount type=bind,src=/,dst=/h "$IMAGE" true
expect_fail "--pid host denied" "$DENIED: host namespaces" docker run --rm --pid host "$IMAGE" true
expect_fail "--net host denied" "$DENIED: host namespaces" docker run --rm --net host "$IMAGE" true
expect_fail "--cap-add SYS_ADMIN denied" "$DENIED: adding this capability" docker run --rm --cap-add SYS_ADMIN "$IMAGE" true
expect_fail "--security-opt seccomp=unconfined denied" "$DENIED: disabling seccomp" docker run --rm --security-opt seccomp=unconfined "$IMAGE" true
expect_fail "local volume binding /etc denied" "$DENIED: bind mounts of host paths outside" docker volume create -o type=none -o o=bind -o device=/etc etcvol
expect_fail "--mount of a local volume binding /etc denied" "$DENIED: bind mounts of host paths outside" \
  docker run --rm --mount 'type=volume,dst=/h,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/etc' "$IMAGE" true
expect_fail "plugin disable of itself denied" "$DENIED: plugin.disable of the authorization plugin itself" docker plugin disable $N
expect_fail "plugin rm -f of itself denied" "$DENIED: plugin.remove" docker plugin rm -f $N
expect_fail "plugin set of itself denied" "$DENIED: plugin.set" docker plugin set $N MODE=audit
expect_fail "disable by ID prefix denied" "$DENIED" docker plugin disable "$(plugin_id $N | cut -c1-12)"
expect_fail "disable of another plugin denied to non-admins" "$DENIED: installing, changing, enabling, disabling or removing plugins is reserved to administrators" docker plugin disable 000000000000
expect_fail "--ipc host denied" "$DENIED: host namespaces" docker run --rm --ipc host "$IMAGE" true
expect_fail "--uts host denied" "$DENIED: host namespaces" docker run --rm --uts host "$IMAGE" true
expect_fail "--security-opt apparmor=unconfined denied" "$DENIED: disabling seccomp" docker run --rm --security-opt apparmor=unconfined "$IMAGE" true
expect_fail "--device denied" "$DENIED: host devices" docker run --rm --device /dev/null:/dev/x "$IMAGE" true
expect_fail "--sysctl kernel.* denied" "$DENIED: kernel.* sysctls" docker run --rm --sysctl kernel.shm_rmid_forced=1 "$IMAGE" true
expect_fail "-v /etc/../:/h denied" "$DENIED: bind mounts" docker run --rm -v /srv/containers/../../etc:/h "$IMAGE" true
expect_fail "-v /tmp/outboard (no longer an allowed root) denied" "$DENIED: bind mounts" docker run --rm -v /tmp/outboard:/h "$IMAGE" true
expect_fail "--security-opt label=disable denied" "$DENIED: disabling seccomp" docker run --rm --security-opt label=disable "$IMAGE" true
expect_fail "--security-opt systempaths=unconfined denied" "$DENIED: disabling seccomp" docker run --rm --security-opt systempaths=unconfined "$IMAGE" true
expect_fail "--network container:X of an unseen container denied" "$DENIED: the authorization plugin has no record" docker run --rm --network container:nosuch "$IMAGE" true
expect_fail "--volumes-from an unseen container denied" "$DENIED: the authorization plugin has no record" docker run --rm --volumes-from nosuch "$IMAGE" true
expect_fail "local volume of type ext4 denied" "$DENIED: volume options that mount a host device" docker volume create -o type=ext4 -o device=/dev/vda blockvol
expect_fail "local volume of type proc denied" "$DENIED: volume options" docker volume create -o type=proc -o device=proc procvol
expect_fail "--cap-add SYS_NICE denied by the profile" "$DENIED: adding this capability" docker run --rm --cap-add SYS_NICE "$IMAGE" true
expect_fail "--oom-score-adj -1000 denied by the profile" "$DENIED: field hostconfig.oomscoreadj" docker run --rm --oom-score-adj -1000 "$IMAGE" true
expect_fail "--runtime other denied by the profile" "$DENIED: field hostconfig.runtime" docker run --rm --runtime sysbox "$IMAGE" true
mkdir -p "$E2E_DIR/evil/rootfs"; echo '{"interface":{"types":["docker.volumedriver/1.0"],"socket":"x.sock"},"entrypoint":["/x"]}' > "$E2E_DIR/evil/config.json"
expect_fail "plugin install denied to non-admins" "$DENIED: installing" docker plugin create evil/x "$E2E_DIR/evil"
expect_fail "swarm init denied" "$DENIED: initialising, joining" docker swarm init --advertise-addr 127.0.0.1
expect_eq "plugin still enabled" true "$(docker plugin inspect -f '{{.Enabled}}' $N)"

# --- ordinary work passes ------------------------------------------------------------------------
check "ordinary run passes" docker run --rm "$IMAGE" sh -c 'echo hello'
expect_eq "run output" hello "$(docker run --rm "$IMAGE" sh -c 'echo hello' 2>/dev/null)"
check "ps passes" docker ps -a
check "images passes" docker images
check "volume ls passes" docker volume ls
check "volume create/rm passes" sh -c "docker volume create plain >/dev/null && docker volume rm plain >/dev/null"
srv_made=; [ -d /srv/containers ] || { mkdir -p /srv/containers; srv_made=1; }
mkdir -p /srv/containers/ob-e2e-$$
check "read-only bind of the allowed root passes" docker run --rm -v /srv/containers/ob-e2e-$$:/x:ro "$IMAGE" true
expect_fail "writable bind of the allowed root denied (roots are read-only)" "$DENIED: field hostconfig.binds: bind of host path \"/srv/containers/ob-e2e-$$\" must be read-only" \
  docker run --rm -v /srv/containers/ob-e2e-$$:/x "$IMAGE" true
# A link planted in the allowed root (as a container with a writable root could): the kernel
# would bind its target; the plugin resolves it on the host (the read-only hostfs mount).
ln -s /etc /srv/containers/ob-link-$$
ln -s ob-e2e-$$ /srv/containers/ob-inside-$$
expect_fail "bind of a planted link to /etc denied" "$DENIED: bind mounts of host paths outside" \
  docker run --rm -v /srv/containers/ob-link-$$:/x:ro "$IMAGE" true
expect_fail "bind below a planted link denied" "$DENIED: bind mounts of host paths outside" \
  docker run --rm --mount type=bind,src=/srv/containers/ob-link-$$/hostname,dst=/x,readonly "$IMAGE" true
expect_fail "local volume binding a planted link denied" "$DENIED: bind mounts of host paths outside" \
  docker volume create -o type=none -o o=bind -o device=/srv/containers/ob-link-$$ linkvol
check "bind of a link that stays inside the root passes" docker run --rm -v /srv/containers/ob-inside-$$:/x:ro "$IMAGE" true
rm -f /srv/containers/ob-link-$$ /srv/containers/ob-inside-$$
rmdir /srv/containers/ob-e2e-$$; [ -n "$srv_made" ] && rmdir /srv/containers
check "anonymous volume bind (-v /data) passes" docker run --rm -v /data "$IMAGE" true
check "tmpfs local volume with device=tmpfs passes" sh -c "docker volume create -o type=tmpfs -o device=tmpfs -o o=size=8m tv >/dev/null && docker volume rm tv >/dev/null"
check "labels differing only in case pass" docker run --rm --label a=1 --label A=2 "$IMAGE" true
check "--cap-add NET_BIND_SERVICE passes" docker run --rm --cap-add NET_BIND_SERVICE "$IMAGE" true
check "--security-opt no-new-privileges passes" docker run --rm --security-opt no-new-privileges "$IMAGE" true
check "exec passes" sh -c "docker run -d --name execme $IMAGE sleep 30 >/dev/null && docker exec execme true"
expect_fail "exec --privileged denied" "$DENIED: privileged" docker exec --privileged execme true
docker rm -f execme >/dev/null 2>&1

# --- containers the plugin has seen: sharing and exec judged against their facts ---------------
check "a plain container runs" docker run -d --name obweb "$IMAGE" sleep 600
check "--network container:obweb passes (seen at create, plain)" docker run --rm --network container:obweb "$IMAGE" true
check "--volumes-from obweb passes" docker run --rm --volumes-from obweb "$IMAGE" true
check "--pid container:<obweb ID prefix> passes" docker run --rm --pid "container:$(docker inspect -f '{{.Id}}' obweb | cut -c1-12)" "$IMAGE" true
# An administrator's privileged container, made while authz was off: unseen until inspected.
authz_off; docker run -d --name obpriv --privileged "$IMAGE" sleep 600 >/dev/null; authz_on
expect_fail "--pid container:obpriv denied while unseen" "$DENIED: the authorization plugin has no record" docker run --rm --pid container:obpriv "$IMAGE" true
check "inspect obpriv (the plugin learns what dockerd applied)" docker inspect obpriv
expect_fail "--pid container:obpriv denied (it is privileged)" "$DENIED: privileged containers" docker run --rm --pid container:obpriv "$IMAGE" true
expect_fail "--volumes-from obpriv denied" "$DENIED: privileged containers" docker run --rm --volumes-from obpriv "$IMAGE" true
expect_fail "exec into obpriv denied" "$DENIED: privileged containers" docker exec obpriv true
expect_fail "cp into obpriv denied" "$DENIED: privileged containers" docker cp "$E2E_DIR/daemon.json" obpriv:/tmp/
log "obpriv: $(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}} {{.State.Error}}' obpriv 2>&1)"
expect_contains "attach to obpriv denied (raw: the CLI refuses stopped ones itself)" "$DENIED: privileged containers" \
  "$(raw -X POST 'http://d/v1.41/containers/obpriv/attach?stream=0&logs=1&stdout=1')"
check "exec into obweb passes" docker exec obweb true

# --- raw requests in shapes the CLI never uses ---------------------------------------------------
BODY='{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"Privileged":true}}'
shape() { # shape "what" curl-args...: must not create (not 201), and if answered 403, by us.
  local what=$1; shift
  local out; out=$(raw "$@")
  case "$out" in
    *' 201') E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL raw %s: created: %s\n' "$what" "$out" >&2 ;;
    *authorization\ denied*' 403') E2E_PASSES=$((E2E_PASSES + 1)); printf '  ok   raw %s denied (403)\n' "$what" >&2 ;;
    *) E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL raw %s: not denied by the plugin: %s\n' "$what" "$out" >&2 ;;
  esac
}
J=(-H 'Content-Type: application/json')
shape "canonical" -X POST "${J[@]}" -d "$BODY" http://d/v1.41/containers/create
shape "lower-case keys" -X POST "${J[@]}" -d '{"image":"local/busybox","hostconfig":{"privileged":true}}' http://d/v1.41/containers/create
shape "upper-case keys" -X POST "${J[@]}" -d '{"IMAGE":"local/busybox","HOSTCONFIG":{"PRIVILEGED":true}}' http://d/v1.41/containers/create
shape "duplicate keys" -X POST "${J[@]}" -d '{"Image":"local/busybox","HostConfig":{"Privileged":false,"Privileged":true}}' http://d/v1.41/containers/create
shape "case-variant keys" -X POST "${J[@]}" -d '{"Image":"local/busybox","HostConfig":{"Privileged":false,"privileged":true}}' http://d/v1.41/containers/create
shape "top-level (deprecated) host config" -X POST "${J[@]}" -d '{"Image":"local/busybox","Privileged":true}' http://d/v1.41/containers/create
shape "charset content type" -X POST -H 'Content-Type: application/json; charset=utf-8' -d "$BODY" http://d/v1.41/containers/create
shape "chunked body" -X POST "${J[@]}" -H 'Transfer-Encoding: chunked' -d "$BODY" http://d/v1.41/containers/create
shape "no API version" -X POST "${J[@]}" -d "$BODY" http://d/containers/create
shape "query string" -X POST "${J[@]}" -d "$BODY" 'http://d/v1.41/containers/create?name=q1&x=/_ping'
shape "percent-encoded path" -X POST "${J[@]}" -d "$BODY" --path-as-is 'http://d/v1.41/%63ontainers%2Fcreate'
shape "body padded past 1 MiB (not forwarded)" -X POST "${J[@]}" --data-binary @<(printf '%s' "$BODY"; head -c 1100000 /dev/zero | tr '\0' ' ') http://d/v1.41/containers/create
shape "legacy start with a host config" -X POST "${J[@]}" -d '{"Privileged":true}' http://d/v1.23/containers/nosuch/start
shape "long-s capability (Go ToUpper)" -X POST "${J[@]}" -d '{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"CapAdd":["\u017fys_admin"]}}' http://d/v1.41/containers/create
shape "empty MaskedPaths" -X POST "${J[@]}" -d '{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"MaskedPaths":[]}}' http://d/v1.41/containers/create
shape "partial ReadonlyPaths" -X POST "${J[@]}" -d '{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"ReadonlyPaths":["/proc/bus"]}}' http://d/v1.41/containers/create
shape "inline seccomp profile" -X POST "${J[@]}" -d '{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]}}' http://d/v1.41/containers/create
shape "unknown HostConfig field" -X POST "${J[@]}" -d '{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"FuturePrivilege":true}}' http://d/v1.41/containers/create
shape "relative local volume device" -X POST "${J[@]}" -d '{"Name":"relv","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"../../sys/dev/char/1:3/../../.."}}' http://d/v1.41/volumes/create
shape "absolute-form request target" -X POST "${J[@]}" -d "$BODY" --request-target 'http://x/v1.41/containers/create' http://d/
shape "no content type (body not forwarded)" -X POST -H 'Content-Type:' -d "$BODY" http://d/v1.41/containers/create
shape "build with the host network" -X POST -H 'Content-Type: application/x-tar' --data-binary @/dev/null 'http://d/v1.41/build?networkmode=host'
shape "BuildKit session" -X POST http://d/session
# `//containers/create` is redirected by dockerd's router before any handler; it must not create.
out=$(raw -X POST "${J[@]}" -d "$BODY" --path-as-is 'http://d//containers/create')
case "$out" in *' 201') expect_eq "raw //containers/create not created" "not 201" "$out" ;; *) expect_eq "raw //containers/create not created ($out)" ok ok ;; esac
out=$(raw -X POST "${J[@]}" -d "$BODY" --path-as-is 'http://d/v1.41/./containers/../containers/create')
case "$out" in *' 201') expect_eq "raw /./../ not created" "not 201" "$out" ;; *) expect_eq "raw /./../ not created ($out)" ok ok ;; esac
expect_eq "no privileged container exists" 0 "$(privileged_count)"

# --- audit trail and stats -----------------------------------------------------------------------
check "audit file has deny lines" grep -q '"decision":"deny"' "$AUDIT"
line=$(grep '"rule":"no-privileged"' "$AUDIT" | head -1)
expect_contains "audit line names the action" '"action":"container.create"' "$line"
expect_contains "audit line names the policy hash" '"policy":"sha256:' "$line"
check "audit lines also in the plugin log" retry 25 sh -c "grep 'plugin=$(plugin_id $N)' '$DOCKERD_LOG' | grep -q decision"
s=$(stats)
expect_contains "stats answer on the plugin socket" '"Mode":"enforce"' "$s"
check "stats count hits of no-privileged" sh -c "echo '$s' | grep -Eq '\"Name\":\"no-privileged\",\"Effect\":\"deny\",\"Hits\":[1-9]'"

# --- hot reload: an edit takes effect, a broken edit is rejected ---------------------------------
cp "$POLICY" "$E2E_DIR/policy.orig"
cat >> "$POLICY" <<'EOF'

[[rule]]
name = "no-volume-ls-today"
effect = "deny"
message = "volume listing is switched off"
actions = ["volume.list"]
EOF
check "policy edit takes effect without restart" retry 50 sh -c "docker volume ls 2>&1 | grep -q 'volume listing is switched off'"
pid_before=$(plugin_pid $N)
printf '\n[[rule]\nname = "broken"\n' >> "$POLICY"
check "broken edit rejected (plugin log)" retry 50 sh -c "grep 'plugin=$(plugin_id $N)' '$DOCKERD_LOG' | grep -q 'policy rejected'"
expect_fail "old policy stays in force" "volume listing is switched off" docker volume ls
expect_fail "privileged still denied" "$DENIED" docker run --rm --privileged "$IMAGE" true
expect_contains "stats show the load error with its line" "line " "$(stats)"
expect_eq "plugin not restarted" "$pid_before" "$(plugin_pid $N)"
bad_out=$("$CHECK_BIN" check "$POLICY" 2>&1)
expect_contains "check command shows the line of the error" "policy.toml:line " "$bad_out"
cp "$E2E_DIR/policy.orig" "$POLICY"
check "restored policy in force" retry 50 sh -c "docker volume ls >/dev/null 2>&1"
kill -HUP "$(plugin_pid $N)"
check "SIGHUP to the plugin reloads the policy" retry 25 sh -c "grep 'plugin=$(plugin_id $N)' '$DOCKERD_LOG' | grep -q 'SIGHUP: reloading the policy'"
expect_eq "plugin survived SIGHUP" "$pid_before" "$(plugin_pid $N)"

# --- dry run: MODE=audit lets everything through and logs would-deny ------------------------------
check "authz removed from the daemon" authz_off
check "disable plugin" docker plugin disable $N
check "set MODE=audit" docker plugin set $N MODE=audit
check "enable plugin" docker plugin enable $N
check "authz back in the daemon" authz_on
check "audit mode: privileged create passes" docker create --name dry --privileged "$IMAGE" true
out=$(raw -X POST "${J[@]}" -d '{"image":"local/busybox","cmd":["true"],"hostconfig":{"privileged":true}}' 'http://d/v1.41/containers/create?name=dry2')
expect_contains "audit mode: raw lower-case privileged create passes" ' 201' "$out"
check "audit mode: logged as would-deny" sh -c "grep '\"decision\":\"would-deny\"' '$AUDIT' | grep -q '\"rule\":\"no-privileged\"'"
expect_contains "stats show audit mode" '"Mode":"audit"' "$(stats)"
expect_eq "dockerd honoured the lower-case keys (privileged)" true "$(docker inspect -f '{{.HostConfig.Privileged}}' dry2 2>&1)"
docker rm -f dry dry2 >/dev/null 2>&1
# The plugin restarted (disable/enable) since it learnt about obweb and obpriv: its records are
# durable, so neither needs inspecting again.
check "after a plugin restart: --network container:obweb still passes" docker run --rm --network container:obweb "$IMAGE" true
check "after a plugin restart: obpriv still known as privileged (would-deny, not unseen)" \
  sh -c "docker run --rm --pid container:obpriv $IMAGE true >/dev/null 2>&1; grep '\"decision\":\"would-deny\"' '$AUDIT' | tail -1 | grep -q '\"rule\":\"no-privileged\"'"

# --- back to enforce, then leave the daemon without authz ---------------------------------------
check "authz removed again" authz_off
docker plugin disable $N >/dev/null && docker plugin set $N MODE=enforce && docker plugin enable $N >/dev/null
check "authz on in enforce mode" authz_on
expect_fail "enforcing again" "$DENIED" docker run --rm --privileged "$IMAGE" true
check "authz removed at the end" authz_off
docker rm -f obweb obpriv >/dev/null 2>&1
check "daemon usable without authz" docker run --rm "$IMAGE" true
check "plugin can be disabled once removed from the daemon" docker plugin disable $N
