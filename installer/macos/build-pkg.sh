#!/bin/sh
# Builds Tandem.pkg from the Tauri-built Tandem.app (run on macOS after
# `npx tauri build --bundles app`). Signing needs a "Developer ID Installer" identity;
# notarise the result with `xcrun notarytool submit --wait` and staple it.
# Usage: installer/macos/build-pkg.sh path/to/Tandem.app VERSION [SIGNING_IDENTITY]
set -eu
app=$1
version=$2
identity=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
mkdir -p "$work/root/Applications"
cp -R "$app" "$work/root/Applications/"
cp "$here/dev.tandem.agent.plist" "$work/root/Applications/Tandem.app/Contents/Resources/"
pkgbuild --root "$work/root" --scripts "$here/scripts" --identifier dev.tandem.agent \
  --version "$version" --install-location / "$work/Tandem-component.pkg"
if [ -n "$identity" ]; then
  productbuild --package "$work/Tandem-component.pkg" --sign "$identity" "Tandem-$version.pkg"
else
  productbuild --package "$work/Tandem-component.pkg" "Tandem-$version.pkg"
fi
rm -rf "$work"
echo "Tandem-$version.pkg"
