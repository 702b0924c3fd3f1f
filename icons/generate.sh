#!/usr/bin/env bash
# Generates Tandem's committed icon files from the SVG sources in icons/src/.
#
#   icons/generate.sh            # rewrite every generated file
#
# Needs rsvg-convert (librsvg2-bin), ImageMagick's convert and png2icns (icnsutils).
# Outputs (all committed, so builds need none of these tools):
#   32x32.png 128x128.png 128x128@2x.png icon.png (512)   app icon for bundles and windows
#   icon.ico (16..256)  icon.icns (16..1024)               Windows and macOS bundles
#   tray/<state>-on-<light|dark>-{32,64}.png               tray icons per panel brightness
#   tray/<state>-template-{32,64}.png                      macOS menu-bar templates
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

for tool in rsvg-convert convert png2icns; do
  if ! command -v "$tool" >/dev/null; then
    echo "generate.sh: $tool is missing (apt-get install librsvg2-bin imagemagick icnsutils)" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Renders an SVG to a PNG of the given square size. -strip and the fixed date keep the
# bytes stable from run to run, so regenerating does not dirty the tree.
render() { # svg size out
  rsvg-convert --width "$2" --height "$2" --keep-aspect-ratio "$1" -o "$work/raw.png"
  convert "$work/raw.png" -strip -define png:exclude-chunks=date,time PNG32:"$3"
}

# The app icon.
render src/app.svg 32 32x32.png
render src/app.svg 128 128x128.png
render src/app.svg 256 128x128@2x.png
render src/app.svg 512 icon.png

ico_parts=()
for size in 16 24 32 48 64 128 256; do
  render src/app.svg "$size" "$work/ico-$size.png"
  ico_parts+=("$work/ico-$size.png")
done
convert "${ico_parts[@]}" icon.ico

icns_parts=()
for size in 16 32 48 128 256 512 1024; do
  render src/app.svg "$size" "$work/icns-$size.png"
  icns_parts+=("$work/icns-$size.png")
done
png2icns icon.icns "${icns_parts[@]}" >/dev/null

# Tray icons: every state in every variant at 32 px (1x) and 64 px (2x panels).
mkdir -p tray
for svg in src/tray/*.svg; do
  name="$(basename "$svg" .svg)"
  render "$svg" 32 "tray/$name-32.png"
  render "$svg" 64 "tray/$name-64.png"
done

echo "icons: generated $(find . -maxdepth 2 -name '*.png' | wc -l) PNGs, icon.ico and icon.icns"
