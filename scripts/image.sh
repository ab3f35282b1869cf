#!/usr/bin/env bash
# Builds Speil's container image from the Containerfile, offline, with buildah (vfs storage in a
# temporary directory, no daemon, nothing pulled: the base is `scratch`), and writes it as an OCI
# archive that `ctr images import`, `skopeo copy oci-archive:…` and `podman load` read.
#
#   ./scripts/image.sh OUT.tar [TAG]     # TAG defaults to localhost/speil:<workspace version>
#
# The static binary comes from scripts/build-static.sh, or from $SPEIL_BINARY when set (a
# statically linked speil built before, as the tests do). The image's creation time is the last
# commit's, so the same commit and binary give the same image.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "image.sh: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 2 && $1 != -* ]] || fail "usage: scripts/image.sh OUT.tar [TAG]"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
tag=${2:-localhost/speil:$version}
out=$(realpath -m -- "$1")

out_dir=$(dirname -- "$out")
[[ -d $out_dir ]] || fail "cannot write $out: directory $out_dir does not exist"
[[ ! -d $out ]] || fail "cannot write $out: it is a directory"
[[ -w $out_dir && (! -e $out || -w $out) ]] || fail "cannot write $out: permission denied"
command -v buildah >/dev/null ||
    fail "buildah not found; install Debian's buildah (apt-get install buildah)"

if [[ -n ${SPEIL_BINARY:-} ]]; then
    binary=$SPEIL_BINARY
    [[ -x $binary ]] || fail "SPEIL_BINARY=$binary is not an executable file"
else
    binary=$(./scripts/build-static.sh | cut -d' ' -f1)
fi

tmp=$(mktemp -d -t speil-image.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/context"
cp -- "$binary" "$tmp/context/speil"

# A private store per run: nothing is read from or left in the machine's container storage.
store=(--root "$tmp/storage" --runroot "$tmp/run" --storage-driver vfs)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
buildah "${store[@]}" build --quiet --isolation chroot --pull-never \
    --timestamp "$epoch" --build-arg "VERSION=$version" \
    --file Containerfile --tag "$tag" "$tmp/context" >/dev/null
rm -f -- "$out"
buildah "${store[@]}" push --quiet "$tag" "oci-archive:$out:$tag" >/dev/null

size=$(stat -c %s "$out")
echo "$out $tag $size bytes ($(awk "BEGIN { printf \"%.1f\", $size / 1048576 }") MiB)"
