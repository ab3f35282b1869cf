#!/usr/bin/env bash
# containerd 2.x and its ctr for the tests, built from containerd's Go module at one pinned
# release into a cache directory outside the repository, and reused from there (CI caches it).
# Prints the directory that holds `containerd` and `ctr`.
#
#   ./scripts/containerd2.sh        # -> ~/.cache/speil-containerd/v2.4.2/bin
#
# Only this test dependency is Go; Speil stays Rust. The build is static (CGO_ENABLED=0) and
# leaves out the snapshotters that need C libraries or kernel features the tests do not use
# (the build tags containerd's BUILDING.md lists). A cold build takes about 4 minutes on 2 cores.
set -euo pipefail

# Keep in step with test_support::containerd::V2_RELEASE (a test checks that they match).
VERSION=v2.4.2
TAGS="no_btrfs no_devmapper no_zfs"

bin="${XDG_CACHE_HOME:-$HOME/.cache}/speil-containerd/$VERSION/bin"
if [[ -x $bin/containerd && -x $bin/ctr ]] && "$bin/containerd" --version | grep -q " ${VERSION#v}"; then
    echo "$bin"
    exit 0
fi

# A fresh machine has Go only at its install location.
if ! command -v go >/dev/null 2>&1; then
    export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
    echo "containerd2.sh: no Go toolchain (go on PATH or /usr/local/go/bin/go)" >&2
    exit 1
fi

echo "==> building containerd $VERSION into $bin (once; reused from then on)" >&2
tmp="$bin.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
# Module mode outside any module: the repository's own files play no part in the build.
(
    cd "$tmp"
    GOBIN="$tmp" GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOTOOLCHAIN=local \
        go install -tags "$TAGS" \
        "github.com/containerd/containerd/v2/cmd/containerd@$VERSION" \
        "github.com/containerd/containerd/v2/cmd/ctr@$VERSION" >&2
)
"$tmp/containerd" --version >&2
rm -rf "$bin"
mkdir -p "$(dirname "$bin")"
mv "$tmp" "$bin"
trap - EXIT
echo "$bin"
