# shellcheck shell=bash
# The test images, sourced by run.sh: each of random, incompressible content in gzip layers (as a
# registry serves them), written by gen-layout into an OCI layout and pushed with skopeo, digests
# preserved, to the upstream and to the reference registry. The layout is deleted once pushed.

# Read by scenarios.sh and report.sh.
# shellcheck disable=SC2034
declare -a IMG_NAME IMG_LABEL IMG_CONFIG IMG_BYTES IMG_KEYS

bytes_of() { # bytes_of SIZE: 10MiB, 1GiB, 512KiB or plain bytes
    local s=$1
    case $s in
        *GiB) echo $(( ${s%GiB} << 30 )) ;;
        *MiB) echo $(( ${s%MiB} << 20 )) ;;
        *KiB) echo $(( ${s%KiB} << 10 )) ;;
        *) echo "$s" ;;
    esac
}

# push NAME REGISTRY ENDPOINT: skopeo, inside ENDPOINT's namespace, so the push does not cross a
# shaped link and is not counted as served.
push() {
    ip netns exec "$(ns_of "$3")" skopeo --insecure-policy copy -q --preserve-digests \
        --dest-tls-verify=false "oci:$SCRATCH/layout:$1" "docker://$2/bench/$1:1"
}

# make_images SPEC...: SPEC is TOTAL:LAYERS (e.g. 100MiB:4, layers of TOTAL/LAYERS each).
make_images() {
    local i=0 spec total layers each sizes manifest blobs
    blobs="$SCRATCH/layout/blobs/sha256"
    for spec in "$@"; do
        total=${spec%:*} layers=${spec#*:}
        each=$(( $(bytes_of "$total") / layers ))
        sizes=()
        for _ in $(seq 1 "$layers"); do sizes+=("$each"); done
        IMG_NAME[i]="img-${total,,}-x$layers"
        IMG_LABEL[i]="$total x$layers"
        manifest=$("$GEN" "$SCRATCH/layout" image "${IMG_NAME[i]}" "${sizes[@]}")
        manifest=${manifest#sha256:}
        IMG_CONFIG[i]=$(jq -r '.config.digest' "$blobs/$manifest")
        # One copy: what a pull downloads (manifest, config and the compressed layers).
        IMG_BYTES[i]=$(( $(stat -c %s "$blobs/$manifest") + $(jq '.config.size + ([.layers[].size] | add)' "$blobs/$manifest") ))
        # What the next node of a rolling update needs to find: the tag and every layer.
        IMG_KEYS[i]="$UPSTREAM/bench/${IMG_NAME[i]}:1 $(jq -r '[.layers[].digest] | join(" ")' "$blobs/$manifest")"
        push "${IMG_NAME[i]}" "$UPSTREAM" up
        push "${IMG_NAME[i]}" "$REFERENCE" ref
        echo "    ${IMG_NAME[i]}: ${IMG_BYTES[i]} bytes, config ${IMG_CONFIG[i]}"
        i=$((i + 1))
    done
    rm -rf "$SCRATCH/layout"
}
