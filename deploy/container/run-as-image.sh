#!/usr/bin/env bash
# Runs vix-node the way deploy/container/Containerfile's image runs it, on a machine where no
# container engine can run (a build host without a docker daemon, a CI sandbox): as uid and gid
# 10001 with no capabilities and no new privileges, on a read-only root file system, with only
# a tmpfs /tmp and the data folder writable and the configuration read-only. It checks the
# image's contract (the node writes nothing but its database) with the binary the
# Containerfile's build stage makes:
#
#   cargo build --release --locked --bin vix-node --bin vix-certs-dev
#   sudo deploy/container/run-as-image.sh DATA ETC target/release/vix-node region --config /etc/vix/north.toml
#
# DATA is mounted at /var/lib/vix (read-write, like the image's volume), ETC at /etc/vix
# (read-only); both must be readable (DATA writable) by uid 10001, as in the image. The network
# is the host's. Needs root for the mount namespace (unshare) and to drop to 10001 (setpriv).
set -euo pipefail
if [ "$#" -lt 4 ]; then
  echo "usage: $0 DATA_DIR ETC_DIR VIX_NODE_BINARY ARGS..." >&2
  exit 2
fi
data=$(realpath "$1")
etc=$(realpath "$2")
binary=$(realpath "$3")
shift 3
# The image's mount points; created on the host once, empty.
mkdir -p /var/lib/vix /etc/vix
exec unshare --mount --fork -- sh -ec '
  data=$1 etc=$2 binary=$3
  shift 3
  mount --make-rprivate /
  mount --bind "$data" /var/lib/vix
  mount --bind "$etc" /etc/vix
  mount -o remount,bind,ro /etc/vix
  mount -o remount,bind,ro /
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
  cd /var/lib/vix
  exec setpriv --reuid 10001 --regid 10001 --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- "$binary" "$@"
' run-as-image "$data" "$etc" "$binary" "$@"
