# shellcheck shell=bash
# One node of the cluster, sourced by run.sh: its own containerd (root, state, socket, host files
# under $SCRATCH/nN) and its Speil, configured the way the chart's DaemonSet configures it
# (charts/speil/templates/daemonset.yaml, default values plus the three the run sets below).

# The headless Service's name in the chart (speil-bootstrap.<namespace>.svc.<clusterDomain>).
BOOTSTRAP_NAME=speil-bootstrap.speil.svc.cluster.local
declare -a CONTAINERD_PIDS SPEIL_PIDS

node_dir() { echo "$SCRATCH/n$1"; }
node_ip() { echo "198.18.1.$1"; }
node_sock() { echo "$(node_dir "$1")/containerd.sock"; }

# containerd's configuration: Debian's 1.6 reads version 2, 2.x version 3 (its CRI split into
# images and runtime plugins); both as crates/test-support/src/containerd.rs writes them, with
# the CRI's registry config_path at the node's host files.
containerd_config() { # containerd_config DIR
    local d=$1
    if [[ $CONTAINERD == 2 ]]; then
        cat <<TOML
version = 3
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.erofs",
                    "io.containerd.nri.v1.nri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$d/opt"
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = "$d/certs.d"
  [plugins."io.containerd.cri.v1.runtime"]
    [plugins."io.containerd.cri.v1.runtime".cni]
      conf_dir = "$d/cni/net.d"
      bin_dirs = ["$d/cni/bin"]
  [plugins."io.containerd.grpc.v1.cri"]
    disable_tcp_service = true
TOML
    else
        cat <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$d/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".cni]
      conf_dir = "$d/cni/net.d"
      bin_dir = "$d/cni/bin"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$d/certs.d"
TOML
    fi
}

# The node as it was before Speil: its containerd's config and the host files its operator
# wrote. The upstream and the reference registry speak plain HTTP, which containerd uses only
# for a registry whose host file says so (a real registry on HTTPS needs no file). The registry
# is also a host table: containerd 1.6 ignored a file holding only `server = "http://..."` and
# went to https:// (measured here), while the same line after a host table is honoured.
node_init() { # node_init N
    local d
    d=$(node_dir "$1")
    mkdir -p "$d/cni/net.d" "$d/cni/bin" "$d/opt"
    containerd_config "$d" >"$d/config.toml"
    for registry in "$UPSTREAM" "$REFERENCE"; do
        mkdir -p "$d/certs.d/$registry"
        printf 'server = "http://%s"\n\n[host."http://%s"]\ncapabilities = ["pull", "resolve"]\n' \
            "$registry" "$registry" >"$d/certs.d/$registry/hosts.toml"
    done
}

# containerd with an empty root: every pull after this is cold.
containerd_start() { # containerd_start N
    local n=$1 d
    d=$(node_dir "$n")
    rm -rf "$d/root" "$d/state"
    start "$d/containerd.log" ip netns exec "$(ns_of "n$n")" "$CONTAINERD_BIN" --config "$d/config.toml"
    CONTAINERD_PIDS[n]=$STARTED
}

containerd_wait() { # containerd_wait N: until its socket answers
    for _ in $(seq 1 200); do
        "$CTR_BIN" --address "$(node_sock "$1")" version >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "bench: containerd of node $1 did not start: $(tail -5 "$(node_dir "$1")/containerd.log")" >&2
    exit 1
}

# stop PID: SIGTERM, then wait for it (every process here is this shell's child), and forget it,
# so the exit trap never signals a pid that may have been reused since.
stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# The init container: `speil configure` with the chart's env. SPEIL_MIRROR_TARGETS is the node's
# own address at the registry port: the namespace is pod and node at once, so there is no
# hostPort mapping in between.
speil_configure() { # speil_configure N
    local n=$1
    env -i PATH="$PATH" \
        SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH="$(node_dir "$n")/certs.d" \
        SPEIL_MIRROR_TARGETS="http://$(node_ip "$n"):5000" \
        SPEIL_MIRRORED_REGISTRIES="http://$UPSTREAM" \
        SPEIL_RESOLVE_TAGS=true \
        SPEIL_PREPEND_EXISTING=true \
        SPEIL_DIAL_TIMEOUT=200ms \
        "$SPEIL" configure >>"$(node_dir "$n")/configure.log" 2>&1
}

# The main container: `speil run` with the chart's env (defaults of values.yaml, with
# mirroredRegistries, prependExisting and peerCIDRs set). The DNS nameserver stands for the
# pod's resolv.conf.
speil_start() { # speil_start N
    local n=$1 d
    d=$(node_dir "$n")
    start "$d/speil.log" ip netns exec "$(ns_of "n$n")" env -i PATH="$PATH" \
        SPEIL_CONTAINERD_SOCK="$d/containerd.sock" \
        SPEIL_CONTAINERD_NAMESPACE=k8s.io \
        SPEIL_CONTAINERD_CONTENT_PATH="$d/root/io.containerd.content.v1.content" \
        SPEIL_CONTAINERD_CONFIG="$d/config.toml" \
        SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH="$d/certs.d" \
        SPEIL_REGISTRY_ADDR=0.0.0.0:5000 \
        SPEIL_ROUTER_ADDR=0.0.0.0:5001 \
        SPEIL_METRICS_ADDR=0.0.0.0:9090 \
        SPEIL_DEBUG_WEB=true \
        SPEIL_BOOTSTRAP_KIND=dns \
        SPEIL_DNS_BOOTSTRAP_DOMAIN="$BOOTSTRAP_NAME" \
        SPEIL_DNS_BOOTSTRAP_NAMESERVER="$DNS_IP:53" \
        SPEIL_MIRRORED_REGISTRIES="http://$UPSTREAM" \
        SPEIL_RESOLVE_TAGS=true \
        SPEIL_MIRROR_CONNECT_TIMEOUT=200ms \
        SPEIL_MIRROR_RESOLVE_TIMEOUT=20ms \
        SPEIL_MIRROR_RESOLVE_RETRIES=3 \
        SPEIL_MIRROR_PEER_QUARANTINE=30s \
        SPEIL_PEER_CIDRS=198.18.0.0/15 \
        SPEIL_P2P_MAX_CONNECTIONS=512 \
        SPEIL_P2P_MAX_CONNECTIONS_PER_PEER=4 \
        SPEIL_P2P_MAX_PENDING_CONNECTIONS=128 \
        SPEIL_P2P_MAX_LOOKUPS=256 \
        SPEIL_P2P_MAX_PROVIDERS_PER_LOOKUP=20 \
        SPEIL_P2P_MAX_DIALS_PER_LOOKUP=4 \
        SPEIL_MIRROR_IN_FLIGHT=true \
        SPEIL_MIRROR_IN_FLIGHT_MIN_SIZE=1048576 \
        SPEIL_MIRROR_IN_FLIGHT_CLAIM_WAIT=100ms \
        SPEIL_IN_FLIGHT_STALL_TIMEOUT=10s \
        SPEIL_LOG_LEVEL="${NODE_LOG_LEVEL:-info}" \
        SPEIL_LOG_FORMAT=text \
        "$SPEIL" run
    SPEIL_PIDS[n]=$STARTED
}

# GET PATH from node N's admin address, from inside its own namespace (the root namespace is
# not on the bridge).
admin_get() { # admin_get N PATH
    ip netns exec "$(ns_of "n$1")" curl -s --max-time 5 "http://127.0.0.1:9090$2"
}

# Every node: containerd emptied and restarted; with `speil` as the argument, Speil too (a new
# peer id and an empty DHT, so no record of an earlier pass survives), each configured anew;
# without it, no Speil and the node's own host files back (`speil cleanup`).
reset_nodes() { # reset_nodes [speil]
    local n
    for n in $(seq 1 "$NODES"); do
        [[ -n ${SPEIL_PIDS[n]:-} ]] && stop_pid "${SPEIL_PIDS[n]}"
        [[ -n ${CONTAINERD_PIDS[n]:-} ]] && stop_pid "${CONTAINERD_PIDS[n]}"
        SPEIL_PIDS[n]='' CONTAINERD_PIDS[n]=''
        if [[ ${1:-} == speil ]]; then
            speil_configure "$n"
        elif [[ -d $(node_dir "$n")/certs.d/_backup ]]; then
            "$SPEIL" cleanup --containerd-registry-config-path "$(node_dir "$n")/certs.d" >/dev/null
        fi
        containerd_start "$n"
    done
    for n in $(seq 1 "$NODES"); do containerd_wait "$n"; done
    [[ ${1:-} == speil ]] || return 0
    for n in $(seq 1 "$NODES"); do speil_start "$n"; done
    wait_connected
}

wait_connected() { # until every node's bootstrap state is `connected`
    local n state
    for n in $(seq 1 "$NODES"); do
        for _ in $(seq 1 300); do
            state=$(admin_get "$n" /status | jq -r '.bootstrap.state' 2>/dev/null || true)
            [[ $state == connected ]] && continue 2
            sleep 0.1
        done
        echo "bench: node $n is not connected (state: ${state:-none}); log: $(tail -5 "$(node_dir "$n")/speil.log")" >&2
        exit 1
    done
}
