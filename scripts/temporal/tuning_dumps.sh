#!/bin/sh
# The model outputs the temporal stage was tuned on (docs/temporal.md), for
# `cargo run --release --example temporal_replay`: for each tuning clip and
# model, `gendr eval --dump-temporal` writes the 60 frames as PNGs, and
# ffmpeg packs the reference and the model's frames as raw rgb24.
#
#     scripts/temporal/tuning_dumps.sh OUT_DIR    # e.g. out/temporal2
#
# OUT_DIR must hold bikes_crop.mkv and bikes_half.mkv
# (scripts/temporal/make_footage.py OUT_DIR makes them). Bikes only: the
# held-out carphone clip is never tuned on. realesrgan-x4 takes minutes.
set -eu
out=$1
gendr=${GENDR:-./target/release/gendr}
for clip in bikes_crop bikes_half; do
    for model in anime-video-x4 realesrgan-x4 default; do
        dir=$out/$clip/$model
        rm -rf "$dir"
        "$gendr" eval "$out/$clip.mkv" -m "$model" --frames 1 --temporal-frames 60 \
            --out "$out/$clip-$model.png" --dump-temporal "$dir" --json > "$out/$clip-$model.json"
        for name in reference model; do
            ffmpeg -v error -y -i "$dir/${name}_%03d.png" -f rawvideo -pix_fmt rgb24 "$dir/$name.rgb"
        done
    done
done
