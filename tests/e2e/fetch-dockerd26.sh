#!/usr/bin/env bash
# Fetch Debian 13 (trixie)'s Docker 26.1 for the e2e harness (DOCKERD=26.1), without touching the
# system: a private apt configuration (own sources, lists, cache and an empty dpkg status) runs
# `apt-get update` and `apt-get download`; nothing is installed, the packages are unpacked with
# dpkg-deb -x. apt checks every .deb against the signed trixie indexes; the SHA-256 sums are then
# kept beside the cache and checked again each time the cache is used, and compared with the sums
# pinned in tests/e2e/dockerd26.sha256.
#
#   bash tests/e2e/fetch-dockerd26.sh [DIR]    # prints DIR; default <repo>/target/dockerd-26
#
# Layout of DIR: debs/*.deb + SHA256SUMS, root/ (the unpacked packages), bin/ (the daemon's PATH:
# trixie's dockerd, containerd, shim, docker-proxy, tini-static as docker-init, and bookworm's
# runc, because trixie's runc and dynamic tini need glibc 2.38 while Debian 12 has 2.36).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${1:-$REPO/target/dockerd-26}
PKGS=(docker.io docker-cli containerd tini)
# The series the harness promises; a newer trixie point release of it is fine.
WANT=26.1.

say() { echo "[fetch-dockerd26] $*" >&2; }

# ready: the unpacked tree is complete and the cached debs still match their recorded sums.
ready() {
  [ -f "$DIR/READY" ] && [ -x "$DIR/bin/dockerd" ] && [ -x "$DIR/bin/docker" ] || return 1
  (cd "$DIR/debs" && sha256sum --quiet -c SHA256SUMS) >/dev/null 2>&1
}

if ready; then echo "$DIR"; exit 0; fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { say "needs apt-get and dpkg-deb"; exit 1; }
[ -x /usr/sbin/runc ] || { say "needs Debian 12's runc (/usr/sbin/runc)"; exit 1; }

rm -rf "$DIR/apt" "$DIR/root" "$DIR/bin" "$DIR/READY"
A=$DIR/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/etc/sources.list.d" "$A/etc/preferences.d" \
  "$A/etc/apt.conf.d" "$DIR/debs"
: > "$A/status"
KR=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$A/etc/sources.list" <<SRC
deb [signed-by=$KR] http://deb.debian.org/debian trixie main
deb [signed-by=$KR] http://deb.debian.org/debian-security trixie-security main
SRC
cat > "$A/apt.conf" <<CONF
Dir::Etc "$A/etc";
Dir::Etc::sourcelist "$A/etc/sources.list";
Dir::Etc::sourceparts "$A/etc/sources.list.d";
Dir::Etc::preferencesparts "$A/etc/preferences.d";
Dir::Etc::parts "$A/etc/apt.conf.d";
Dir::Etc::trusted "$KR";
Dir::State "$A";
Dir::State::lists "$A/lists";
Dir::State::status "$A/status";
Dir::Cache "$A/cache";
Dir::Cache::archives "$A/cache/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
CONF
export APT_CONFIG=$A/apt.conf
say "apt-get update (trixie, private lists in $A)"
apt-get update -qq -o APT::Sandbox::User=root >/dev/null
for p in "${PKGS[@]}"; do
  v=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
  say "$p $v"
  if [ "$p" = docker.io ] && [[ "$v" != "$WANT"* ]]; then say "docker.io $v is not $WANT*"; exit 1; fi
done
rm -f "$DIR"/debs/*.deb
(cd "$DIR/debs" && apt-get download -qq -o APT::Sandbox::User=root "${PKGS[@]}" >/dev/null)
(cd "$DIR/debs" && sha256sum ./*.deb > SHA256SUMS)
# The versions this repository was last tested with: a security update in trixie replaces them on
# deb.debian.org; the new packages are still apt-verified, and the change is said out loud.
if ! (cd "$DIR/debs" && sha256sum --quiet -c "$REPO/tests/e2e/dockerd26.sha256") >/dev/null 2>&1; then
  say "note: trixie's packages differ from tests/e2e/dockerd26.sha256 (apt-verified; update that file)"
fi
mkdir -p "$DIR/root" "$DIR/bin"
for d in "$DIR"/debs/*.deb; do dpkg-deb -x "$d" "$DIR/root"; done
R=$DIR/root
ln -sr "$R/usr/sbin/dockerd" "$R/usr/bin/docker" "$R/usr/bin/containerd" \
  "$R/usr/bin/containerd-shim-runc-v2" "$R/usr/bin/ctr" "$DIR/bin/"
[ -x "$R/usr/sbin/docker-proxy" ] && ln -sr "$R/usr/sbin/docker-proxy" "$DIR/bin/"
[ -x "$R/usr/bin/docker-proxy" ] && ln -sr "$R/usr/bin/docker-proxy" "$DIR/bin/"
ln -sr "$R/usr/bin/tini-static" "$DIR/bin/docker-init"
ln -s /usr/sbin/runc "$DIR/bin/runc"
"$DIR/bin/dockerd" --version >&2
touch "$DIR/READY"
echo "$DIR"
