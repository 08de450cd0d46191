#!/usr/bin/env bash
# The benchmark interview of ../shared/bench/make_bench_video.sh (its two clips of real faces looped
# to MINUTES minutes at WIDTHxHEIGHT, 30 fps, H.264 with a 2 s keyframe interval), moving all along.
# The shared script joins the clips with FFmpeg's concat demuxer, whose timestamps jump from 15.4 s
# to 66.1 s where the second clip begins; its fps filter fills the gap with copies of the last
# frame, so about two thirds of its frames repeat the one before. Here each clip is fitted from its
# own start and joined by the concat filter, and that 20 s cycle is looped. The segments file and
# the printed path come from the shared script, which keeps a video already built.
# Usage: make_moving_video.sh SHARED_DIR OUT_DIR [MINUTES=10] [WIDTH=1280] [HEIGHT=720]; needs $FFMPEG.
set -euo pipefail
shared=${1:?shared folder}; out=${2:?output folder}; min=${3:-10}; w=${4:-1280}; h=${5:-720}
ff=${FFMPEG:?set FFMPEG to an ffmpeg binary}
src=$shared/data/videos
mkdir -p "$out"
video=$out/interview_${min}min_${h}p.mp4
if [ ! -s "$video" ]; then
  cycle=$(mktemp --suffix=.mp4); part=$video.part.mp4
  trap 'rm -f "$cycle" "$part"' EXIT
  fit="scale=${w}:${h}:force_original_aspect_ratio=decrease,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,fps=30,setsar=1"
  "$ff" -v error -y -i "$src/woman2.mp4" -i "$src/test.mp4" \
    -filter_complex "[0:v]$fit[a];[1:v]$fit[b];[a][b]concat=n=2:v=1:a=0[v]" -map "[v]" \
    -c:v libx264 -preset veryfast -crf 18 -g 60 -pix_fmt yuv420p "$cycle"
  "$ff" -v error -y -stream_loop -1 -i "$cycle" -t $((min * 60)) -vf fps=30 \
    -c:v libx264 -preset veryfast -crf 23 -g 60 -pix_fmt yuv420p -an "$part"
  mv "$part" "$video"
fi
bash "$shared/bench/make_bench_video.sh" "$out" "$min" "$w" "$h"
