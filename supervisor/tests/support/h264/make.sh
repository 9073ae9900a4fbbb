#!/bin/sh
# Remakes the two H.264 access units the viewer's native-stream browser test sends
# (tests/viewer_browser.rs): 1280x720, four quadrants (red, green / blue, white) and a centre
# square that is yellow in the key frame and magenta in the delta frame. Annex B, constrained
# baseline, from Debian's GStreamer with openh264enc (gstreamer1.0-plugins-bad).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/in.yuv" <<'PY'
import sys
W, H = 1280, 720
def yuv(r, g, b):
    return (round(0.257*r + 0.504*g + 0.098*b + 16), round(-0.148*r - 0.291*g + 0.439*b + 128),
            round(0.439*r - 0.368*g - 0.071*b + 128))
def frame(centre):
    def colour(x, y):
        if 480 <= x < 800 and 240 <= y < 480: return centre
        if y < 360: return (230, 40, 40) if x < 640 else (40, 200, 60)
        return (40, 60, 220) if x < 640 else (240, 240, 240)
    Y = bytearray(W*H); U = bytearray(W*H//4); V = bytearray(W*H//4)
    for y in range(H):
        for x in range(W):
            Y[y*W + x] = yuv(*colour(x, y))[0]
    for y in range(0, H, 2):
        for x in range(0, W, 2):
            _, u, v = yuv(*colour(x, y)); U[(y//2)*(W//2) + x//2] = u; V[(y//2)*(W//2) + x//2] = v
    return bytes(Y + U + V)
open(sys.argv[1], "wb").write(frame((250, 220, 30)) + frame((200, 40, 200)))
PY
gst-launch-1.0 -q filesrc location="$tmp/in.yuv" \
  ! rawvideoparse width=1280 height=720 format=i420 framerate=25/1 \
  ! openh264enc bitrate=3000000 rate-control=bitrate usage-type=screen gop-size=30 \
  ! video/x-h264,stream-format=byte-stream ! multifilesink location="$tmp/f%d.h264"
mv "$tmp/f0.h264" quadrants-key.h264
mv "$tmp/f1.h264" quadrants-delta.h264
