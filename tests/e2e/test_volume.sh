#!/usr/bin/env bash
# Volume driver end to end against a private dockerd: owner/mode, data shared between containers,
# ls/inspect/rm, rm refused while in use, dir data deleted and bind data kept, survival of plugin
# disable/enable, SIGKILL and a dockerd restart, tmpfs size limit, bind prefixes, bad input.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install volume
P=$PREFIX-volume:latest
DATA=$E2E_DIR/state/volume-data
BIND_OK=$E2E_DIR/bind-ok
BIND_NO=$E2E_DIR/bind-no
mkdir -p "$BIND_OK/data" "$BIND_NO"
echo hostdata > "$BIND_OK/data/f"
ln -s "$BIND_NO" "$BIND_OK/escape"

sock() { echo "$E2E_PLUGIN_DIR/$(plugin_id $P)/outboard-volume.sock"; }
# call METHOD JSON: talk to the plugin directly (what dockerd would send).
# curl errors go to stdout too, so a failed call shows why in the check that reads it.
call() { curl -sS --max-time 60 --unix-socket "$(sock)" -X POST -d "$2" "http://p/VolumeDriver.$1" 2>&1; }
status() { docker volume inspect -f '{{json .Status}}' "$1"; }
run() { docker run --rm "$@" 2>/dev/null; }

# --- The bind prefix is a plugin setting: set it while the plugin is disabled.
check "disable to change a setting" docker plugin disable $P
# A prefix reaching the plugin's own data root would let a bind volume reach other volumes'
# data: the plugin refuses to start with it (dockerd gives up after its socket checks).
check "set BIND_ALLOWED to the plugin's own data root" docker plugin set $P BIND_ALLOWED="$(dirname "$DATA")"
expect_fail "enable refused" "" docker plugin enable $P
check "the plugin said why" retry 25 sh -c "grep -q 'BIND_ALLOWED.*contain nor lie inside the data directory' '$DOCKERD_LOG'"
docker plugin disable $P >/dev/null 2>&1
check "set BIND_ALLOWED" docker plugin set $P BIND_ALLOWED="$BIND_OK"
# dockerd removes the failed start's container asynchronously ("id already in use" meanwhile).
enabled() { docker plugin enable $P >/dev/null 2>&1; [ "$(docker plugin inspect -f '{{.Enabled}}' $P)" = true ]; }
check "enable again" retry 50 enabled

# --- Owner and mode; one container writes, another reads.
check "create v1 with uid/gid/mode" docker volume create -d $P -o uid=1000 -o gid=1000 -o mode=0750 v1
check "container 1 writes into v1" run -v v1:/x $IMAGE sh -c 'echo hello > /x/f'
expect_eq "container 2 reads it back" "hello" "$(run -v v1:/x $IMAGE cat /x/f)"
expect_eq "owner and mode as asked" "1000:1000 750" "$(run -v v1:/x $IMAGE stat -c '%u:%g %a' /x)"
check "uid 1000 may write" run --user 1000:1000 -v v1:/x $IMAGE sh -c 'echo u > /x/by-1000'
expect_fail "uid 2000 may not read (mode 0750)" "Permission denied" docker run --rm --user 2000:2000 -v v1:/x $IMAGE ls /x
expect_eq "data lives in the data mount on the host" "hello" "$(cat "$DATA/v1/f")"

# --- ls / inspect.
expect_contains "volume ls shows v1 with our driver" "$P v1" "$(docker volume ls --format '{{.Driver}} {{.Name}}')"
st=$(status v1)
expect_contains "Status.Backend" '"Backend":"dir"' "$st"
expect_contains "Status.Owner" '"Owner":"1000:1000"' "$st"
expect_contains "Status.Mode" '"Mode":"0750"' "$st"
expect_contains "Status.Mounts" '"Mounts":0' "$st"
expect_contains "Status.Options" '"mode":"0750"' "$st"
expect_contains "Status.SizeUsed" '"SizeUsed"' "$st"
expect_contains "Status.State ok" '"State":"ok"' "$st"
created=$(docker volume inspect -f '{{.CreatedAt}}' v1)
check "CreatedAt is a real time ($created)" test "${created:0:2}" = "20"

# --- Remove while in use.
check "a running container holds v1" docker run -d --name holder -v v1:/x $IMAGE sleep 300
expect_contains "Status.Mounts counts the holder" '"Mounts":1' "$(status v1)"
expect_fail "docker volume rm refused while in use" "in use" docker volume rm v1
expect_contains "the plugin itself refuses Remove naming the caller" "mounted by 1 caller" "$(call Remove '{"Name":"v1"}')"
check "the refused Remove left the data" test -f "$DATA/v1/f"
docker rm -f holder >/dev/null
expect_contains "Unmount on container exit" '"Mounts":0' "$(status v1)"
check "volume rm after the container is gone" docker volume rm v1
check "dir data deleted with the volume" test ! -e "$DATA/v1"
check "moved-aside data is deleted in the background" retry 50 sh -c "! ls -A '$DATA' | grep -q '^.trash-v1'"
check "v1 gone from volume ls" sh -c "! docker volume ls -q | grep -qx v1"

# --- Mount accounting by ID, straight on the socket.
check "create acct" docker volume create -d $P acct
mp=$(call Mount '{"Name":"acct","ID":"aaa"}')
expect_contains "Mount answers a path under the propagatedMount" '"Mountpoint":"/mnt/volumes/acct"' "$mp"
expect_contains "the same ID mounts again" '"Mountpoint":"/mnt/volumes/acct"' "$(call Mount '{"Name":"acct","ID":"aaa"}')"
expect_contains "a second caller mounts" '"Mountpoint":"/mnt/volumes/acct"' "$(call Mount '{"Name":"acct","ID":"bbb"}')"
expect_contains "repeated ID counts as another reference" '"Mounts":3' "$(status acct)"
expect_eq "Unmount of an unknown ID succeeds" "{}" "$(call Unmount '{"Name":"acct","ID":"zzz"}')"
call Unmount '{"Name":"acct","ID":"aaa"}' >/dev/null
call Unmount '{"Name":"acct","ID":"aaa"}' >/dev/null
expect_contains "Remove names the remaining caller" "bbb" "$(call Remove '{"Name":"acct"}')"
call Unmount '{"Name":"acct","ID":"bbb"}' >/dev/null
check "rm once every caller left" docker volume rm acct

# --- Volumes made implicitly by docker run (named, and anonymous with --rm).
check "run -v auto:/data --volume-driver creates the volume" run --volume-driver $P -v auto:/data $IMAGE sh -c 'echo a > /data/f'
expect_eq "implicit volume uses our driver" "$P" "$(docker volume inspect -f '{{.Driver}}' auto)"
expect_contains "its mount references were all released" '"Mounts":0' "$(status auto)"
check "rm auto" docker volume rm auto
check "anonymous volume with --rm" run --volume-driver $P -v /anon $IMAGE sh -c 'echo a > /anon/f'
expect_eq "anonymous volume removed with its container (no data left)" "" "$(ls "$DATA")"

# --- tmpfs with a size limit.
check "create tmpfs 1m" docker volume create -d $P -o type=tmpfs -o size=1m -o mode=1777 t1
check "writing within the limit works" run -v t1:/x $IMAGE dd if=/dev/zero of=/x/small bs=1024 count=512
expect_fail "writing past the limit fails in the container" "No space left" docker run --rm -v t1:/x $IMAGE dd if=/dev/zero of=/x/big bs=1024 count=2048
expect_contains "tmpfs Status shows the limit" '"SizeLimit":"1.0MiB"' "$(status t1)"
expect_eq "tmpfs mode applied" "1777" "$(run -v t1:/x $IMAGE stat -c %a /x)"
check "rm tmpfs volume" docker volume rm t1

# --- bind: allowed prefix works, outside refused, data kept on rm.
check "bind under the allowed prefix" docker volume create -d $P -o type=bind -o path="$BIND_OK/data" b1
expect_eq "bind volume shows host data" "hostdata" "$(run -v b1:/x $IMAGE cat /x/f)"
check "container writes through the bind" run -v b1:/x $IMAGE sh -c 'echo new > /x/g'
expect_eq "written data is on the host" "new" "$(cat "$BIND_OK/data/g")"
expect_contains "bind Status shows the host path" "\"HostPath\":\"$BIND_OK/data\"" "$(status b1)"
check "rm bind volume" docker volume rm b1
check "bind host data kept after rm" test -f "$BIND_OK/data/f" -a -f "$BIND_OK/data/g"
expect_fail "bind outside the prefix refused" "not under an allowed host prefix" docker volume create -d $P -o type=bind -o path="$BIND_NO" b2
expect_fail "bind escaping by symlink refused" "not under an allowed host prefix" docker volume create -d $P -o type=bind -o path="$BIND_OK/escape" b3
expect_fail "bind escaping by .. refused" "not under an allowed host prefix" docker volume create -d $P -o type=bind -o path="$BIND_OK/../bind-no" b4
expect_fail "bind to a missing directory refused" "no such directory" docker volume create -d $P -o type=bind -o path="$BIND_OK/missing" b5
expect_fail "bind with a relative path refused" "absolute host path" docker volume create -d $P -o type=bind -o path=rel/dir b6

# --- Bad input: clear errors, nothing created.
expect_fail "name with / refused" "invalid volume name" docker volume create -d $P a/b
expect_contains "name with / refused by the plugin" "path separator" "$(call Create '{"Name":"a/b","Opts":{}}')"
expect_fail "name .." "invalid volume name" docker volume create -d $P ..
expect_fail "name with .." "contains '..'" docker volume create -d $P a..b
expect_fail "name starting with ." "starts with" docker volume create -d $P .hidden
expect_fail "over-long name" "bytes long" docker volume create -d $P "$(printf 'n%.0s' $(seq 1 201))"
expect_fail "unknown option named, valid ones listed" 'unknown option "colour" for type=dir; valid options: type, uid, gid, mode, size' docker volume create -d $P -o colour=red bad1
expect_fail "malformed size" 'invalid value for option size="lots"' docker volume create -d $P -o type=tmpfs -o size=lots bad2
expect_fail "malformed uid" 'invalid value for option uid="root"' docker volume create -d $P -o uid=root bad3
expect_fail "malformed mode" 'invalid value for option mode="999"' docker volume create -d $P -o mode=999 bad4
expect_fail "unknown type" "valid types: dir (default), tmpfs, bind" docker volume create -d $P -o type=nfs bad5
expect_fail "size on dir needs project quotas" "project quotas" docker volume create -d $P -o size=10m bad6
expect_eq "nothing was created" "" "$(docker volume ls -q | grep -E '^(bad[0-9]|b[2-6]|a\.\.b|\.hidden)$')"
expect_eq "no data directories were made" "" "$(ls "$DATA")"

# --- Survival: plugin disable/enable, SIGKILL (also while mounted), dockerd restart.
check "create keep" docker volume create -d $P -o uid=1000 -o mode=0700 keep
check "write to keep" run -v keep:/x $IMAGE sh -c 'echo precious > /x/f'
check "disable -f (volumes exist)" docker plugin disable -f $P
check "enable" docker plugin enable $P
check "keep listed after disable/enable" sh -c "docker volume ls -q | grep -qx keep"
expect_eq "keep data after disable/enable" "precious" "$(run -v keep:/x $IMAGE cat /x/f)"

check "a running container mounts keep" docker run -d --name user1 -v keep:/x $IMAGE sleep 300
old=$(plugin_pid $P)
check "plugin pid found ($old)" test -n "$old"
kill -9 "$old"
restarted() { local p; p=$(plugin_pid $P) && [ "$p" != "$old" ] && docker volume inspect keep; }
check "dockerd restarted the plugin after SIGKILL" retry 100 restarted
expect_contains "mount count survived the SIGKILL" '"Mounts":1' "$(status keep)"
expect_eq "running container still sees the data" "precious" "$(docker exec user1 cat /x/f)"
check "a second container mounts keep meanwhile" run -v keep:/x $IMAGE true
docker rm -f user1 >/dev/null
expect_contains "unmounted after the container left" '"Mounts":0' "$(status keep)"
check "kill -9 again while idle" kill_plugin_settled $P
check "plugin back again" retry 100 restarted
expect_eq "keep data after SIGKILL" "precious" "$(run -v keep:/x $IMAGE cat /x/f)"

check "restart dockerd" e2e_restart_dockerd
check "keep still listed after dockerd restart" retry 50 sh -c "docker volume ls -q | grep -qx keep"
expect_eq "keep mountable with data after dockerd restart" "precious" "$(run -v keep:/x $IMAGE cat /x/f)"
expect_eq "owner/mode kept" "1000 700" "$(run -v keep:/x $IMAGE stat -c '%u %a' /x)"
# --- Data deleted behind the plugin's back: the volume is kept and the problem reported.
check "create lost" docker volume create -d $P lost
rm -rf "$DATA/lost"
expect_contains "missing data shows in Status at once" "data directory /data/lost does not exist" "$(status lost)"
check "kill -9 the plugin" kill_plugin_settled $P
check "plugin answers again" retry 100 docker volume inspect lost
check "reconciliation logged the missing data" retry 25 sh -c "grep 'plugin=$(plugin_id $P)' '$DOCKERD_LOG' | grep -q 'volume data missing'"
check "restart dockerd with a volume whose data is missing" e2e_restart_dockerd
check "dockerd did not forget it (Get still answers)" retry 50 sh -c "docker volume ls -q | grep -qx lost"
expect_fail "mounting it fails with a clear message" "data missing" docker run --rm -v lost:/x $IMAGE true
check "it can be removed" docker volume rm lost

# --- Reinstall (plugin rm -f, create, enable with the same host directories): nothing lost.
check "plugin rm -f" docker plugin rm -f $P
e2e_install volume
check "keep listed after a reinstall" retry 50 sh -c "docker volume ls -q | grep -qx keep"
expect_eq "keep data after a reinstall" "precious" "$(run -v keep:/x $IMAGE cat /x/f)"

check "rm keep" docker volume rm keep
check "keep data deleted" test ! -e "$DATA/keep"
check "plugin logged reconciliation" grep -q reconciled <(plugin_log $P)

# --- Symlinks planted in the plugin's own data root are never followed.
mkdir -p "$E2E_DIR/decoy"; echo decoy > "$E2E_DIR/decoy/f"
ln -s "$E2E_DIR/decoy" "$DATA/planted"
expect_fail "create over a planted symlink is refused" "" docker volume create -d $P planted
check "the symlink's target was not chowned or changed" sh -c "[ \"\$(cat '$E2E_DIR/decoy/f')\" = decoy ]"
check "no container ever saw the decoy through the volume" sh -c "! docker run --rm -v planted:/x $IMAGE cat /x/f 2>/dev/null | grep -q decoy"
rm -f "$DATA/planted"
check "a plain volume still works after" sh -c "docker volume create -d $P after >/dev/null && docker run --rm -v after:/x $IMAGE sh -c 'echo ok > /x/f' && docker volume rm after >/dev/null"
