#!/usr/bin/env bash
# Refresh the viewer's vendored JavaScript from the npm registry (no CDN at run time).
# The copies are committed under src/postermap/viewer/vendor so the package works offline.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/postermap/viewer/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent leaflet@1.9.4 leaflet.fullscreen@5.3.3 leaflet-minimap@3.6.1 >/dev/null
mkdir leaflet fullscreen minimap
tar xzf leaflet-1.9.4.tgz -C leaflet
tar xzf leaflet.fullscreen-5.3.3.tgz -C fullscreen
tar xzf leaflet-minimap-3.6.1.tgz -C minimap
# keep vendor/wordnet (made by scripts/build_concepts.py, not from npm)
rm -rf "$dest/leaflet" "$dest/leaflet.fullscreen" "$dest/leaflet-minimap"
mkdir -p "$dest/leaflet" "$dest/leaflet.fullscreen" "$dest/leaflet-minimap"
cp -r leaflet/package/dist/{leaflet.js,leaflet.css,images} leaflet/package/LICENSE "$dest/leaflet/"
cp fullscreen/package/dist/Control.FullScreen.{umd.js,css} fullscreen/package/LICENSE.md "$dest/leaflet.fullscreen/"
cp -r minimap/package/src/{Control.MiniMap.js,Control.MiniMap.css,images} minimap/package/LICENSE.txt "$dest/leaflet-minimap/"
echo "vendored into $dest"
