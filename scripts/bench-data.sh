# shellcheck shell=bash
# Sourced by the benchmarks: test data they share.

# make_bench_raw RAW SIZE: a sparse raw file of SIZE bytes (a multiple of 64 MiB), ~90% allocated
# in 64 MiB chunks: even chunks random bytes (do not compress), rotated so that chunks differ;
# odd chunks one repeated byte (compress well); every tenth chunk (i % 10 == 7) left a hole.
make_bench_raw() {
    local raw="$1" size="$2" chunk=$((64 << 20)) rand="$1.rand" i n
    rm -f "$raw"
    truncate -s "$size" "$raw"
    openssl rand -out "$rand" "$chunk"
    n=$((size / chunk))
    for ((i = 0; i < n; i++)); do
        ((i % 10 == 7)) && continue
        if ((i % 2 == 0)); then
            { tail -c +$((i * 4096 + 1)) "$rand"; head -c $((i * 4096)) "$rand"; } |
                dd of="$raw" bs=1M seek=$((i * 64)) conv=notrunc iflag=fullblock status=none
        else
            head -c "$chunk" /dev/zero | tr '\0' "\\$(printf '%03o' $((i % 255 + 1)))" |
                dd of="$raw" bs=1M seek=$((i * 64)) conv=notrunc iflag=fullblock status=none
        fi
    done
    rm -f "$rand"
}
