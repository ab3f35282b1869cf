# shellcheck shell=bash
# The tables of the cluster benchmark and the assertions of its quick mode, sourced by run.sh.
# Times are the median over the nodes of each PullImage call (from the request to its answer);
# a creation also has the time until every node was done.

stat_of() { # stat_of FILE median|max
    [[ -s $1 ]] || { echo "-"; return; }
    if [[ $2 == max ]]; then sort -n "$1" | tail -1 | awk '{printf "%.0f", $1}'; else median <"$1" | awk '{printf "%.0f", $1}'; fi
}
# Time saved against the baseline, in percent.
gain() { awk -v b="$1" -v s="$2" 'BEGIN { if (b == "-" || s == "-" || b <= 0) print "-"; else printf "%.0f%%", (1 - s / b) * 100 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
# Spegel's published rolling-update gain for an image of this size (its README's benchmark, 50
# AKS nodes): 10 MB 1,220 -> 210 ms, 100 MB 1,725 -> 560 ms, 1 GB 8,429 -> 6,682 ms.
spegel_gain() {
    case $1 in
        img-10mib-*) gain 1220 210 ;;
        img-100mib-*) gain 1725 560 ;;
        img-1gib-*) gain 8429 6682 ;;
        *) echo "-" ;;
    esac
}
# The verdict on MEASURED against TARGET (both may be "-", which has none).
judge() { # judge MEASURED OP TARGET
    [[ $1 == - || $3 == - ]] && { echo ""; return; }
    verdict "${1%\%}" "${3%\%}" "$2"
}

report() {
    local i r b s ref p bl sl c cr
    echo
    echo "Rolling update: PullImage ms, median of $NODES nodes (node link $NODE_RATE, upstream link $WAN_RATE, containerd $CONTAINERD)"
    printf '%-14s %9s %9s %7s %13s %7s %11s %9s %7s\n' image baseline speil gain "spegel gain" "" reference speil/ref ""
    for i in "${!IMG_NAME[@]}"; do
        b=$(stat_of "$RESULTS/$i-base-rolling" median)
        s=$(stat_of "$RESULTS/$i-speil-rolling" median)
        ref=$(stat_of "$RESULTS/$i-reference" median)
        r=$(awk -v s="$s" -v r="$ref" 'BEGIN { if (s == "-" || r == "-" || r <= 0) print "-"; else printf "%.2f", s / r }')
        p=$(spegel_gain "${IMG_NAME[i]}")
        printf '%-14s %9s %9s %7s %13s %7s %11s %9s %7s\n' "${IMG_LABEL[i]}" "$b" "$s" "$(gain "$b" "$s")" \
            "$p" "$(judge "$(gain "$b" "$s")" ">=" "$p")" "$ref" "$r" "$(judge "$r" "<=" 1.3)"
    done
    echo
    echo "Creation (all nodes at once): PullImage ms, median of $NODES nodes, and until the last was done (target with Speil: at most half the baseline's)"
    printf '%-14s %9s %9s %7s %14s %14s %7s %7s\n' image baseline speil gain "baseline last" "speil last" "" ""
    for i in "${!IMG_NAME[@]}"; do
        b=$(stat_of "$RESULTS/$i-base-creation" median)
        s=$(stat_of "$RESULTS/$i-speil-creation" median)
        bl=$(cat "$RESULTS/$i-base-creation.wall" 2>/dev/null || echo -)
        sl=$(cat "$RESULTS/$i-speil-creation.wall" 2>/dev/null || echo -)
        r=$(awk -v s="$sl" -v b="$bl" 'BEGIN { if (s == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", s / b }')
        printf '%-14s %9s %9s %7s %14s %14s %7s %7s\n' "${IMG_LABEL[i]}" "$b" "$s" "$(gain "$b" "$s")" \
            "$bl" "$sl" "$r" "$(judge "$r" "<=" 0.5)"
    done
    echo
    echo "Upstream: MB its registry served (GET responses in its access log), and in copies of the image (targets with Speil: rolling at most 1.1, creation at most 1.5)"
    printf '%-14s %9s %14s %14s %9s %7s %15s %15s %9s %7s\n' image "one copy" "rolling base" "rolling speil" copies "" "creation base" "creation speil" copies ""
    for i in "${!IMG_NAME[@]}"; do
        s=$(cat "$RESULTS/$i-speil-rolling.bytes")
        r=$(awk -v s="$s" -v c="${IMG_BYTES[i]}" 'BEGIN { printf "%.2f", s / c }')
        c=$(cat "$RESULTS/$i-speil-creation.bytes")
        cr=$(awk -v s="$c" -v c="${IMG_BYTES[i]}" 'BEGIN { printf "%.2f", s / c }')
        printf '%-14s %9s %14s %14s %9s %7s %15s %15s %9s %7s\n' "${IMG_LABEL[i]}" "$(mb "${IMG_BYTES[i]}")" \
            "$(mb "$(cat "$RESULTS/$i-base-rolling.bytes")")" "$(mb "$s")" "$r" "$(judge "$r" "<=" 1.1)" \
            "$(mb "$(cat "$RESULTS/$i-base-creation.bytes")")" "$(mb "$c")" "$cr" "$(judge "$cr" "<=" 1.5)"
    done
    echo
    echo "failed pulls: $FAILED_PULLS; keys not findable 30 s after a node pulled them: $(wc -l <"$RESULTS/unfindable")"
    echo "(speil $SPEIL; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
}

# What the quick mode claims, asserted; never a time.
assert_quick() {
    local i pass lines served
    ((FAILED_PULLS == 0)) || { echo "bench: $FAILED_PULLS pulls failed" >&2; exit 1; }
    if [[ -s $RESULTS/unfindable ]]; then
        echo "bench: content a node held was not findable: $(tr '\n' ' ' <"$RESULTS/unfindable")" >&2
        exit 1
    fi
    for i in "${!IMG_NAME[@]}"; do
        for pass in base-rolling reference base-creation speil-rolling speil-creation; do
            lines=$(wc -l <"$RESULTS/$i-$pass")
            ((lines == NODES)) || { echo "bench: $pass: $lines of $NODES pulls succeeded" >&2; exit 1; }
        done
        # The counter works: without Speil every node downloads the image from the upstream.
        served=$(cat "$RESULTS/$i-base-rolling.bytes")
        ((served >= NODES * IMG_BYTES[i])) || { echo "bench: the upstream served $served bytes to $NODES nodes without Speil, less than $NODES copies of ${IMG_BYTES[i]}" >&2; exit 1; }
        # The claim: with Speil, a rolling update takes the image from the upstream about once.
        served=$(cat "$RESULTS/$i-speil-rolling.bytes")
        ((served * 10 <= IMG_BYTES[i] * 11)) || { echo "bench: with Speil the upstream served $served bytes, more than 1.1 copies of ${IMG_BYTES[i]}" >&2; exit 1; }
        # And the other nodes got it from their peers (every byte verified by the node on the way).
        served=$(cat "$RESULTS/$i-speil-rolling.peer")
        ((served >= (NODES - 1) * IMG_BYTES[i])) || { echo "bench: the nodes got $served bytes from peers, less than $((NODES - 1)) copies of ${IMG_BYTES[i]}" >&2; exit 1; }
        # Creation: with Speil one node downloads each layer and the others stream its download.
        served=$(cat "$RESULTS/$i-speil-creation.bytes")
        ((served * 10 <= IMG_BYTES[i] * 15)) || { echo "bench: in a creation with Speil the upstream served $served bytes, more than 1.5 copies of ${IMG_BYTES[i]}" >&2; exit 1; }
    done
    echo "quick: every pull succeeded on every node with the image's config digest; with Speil the upstream served the image once per rolling update, the other nodes got it from peers, and a creation took at most 1.5 copies from the upstream"
}
