#!/usr/bin/env bash
# Makes /tmp/imgbench/corpus (photos from Debian's wallpaper packages, see sharp/corpus.js) and
# the Sharp peer's node_modules. Needs node + npm and apt lists (`apt-get update` once).
# Besides the photos of the cases a-h, one 2040x1360 photo (DIV2K's size, as in imgproxy's
# image-servers-benchmark) as photo-2.8mp.jpg (q80), .png, .webp (q75) and .avif (q65).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${IMGBENCH:-/tmp/imgbench}"
PEER="$WORK/peer-sharp"            # a writable copy of ./sharp, with its node_modules
OUT="$WORK/corpus"
mkdir -p "$PEER" "$WORK/debs" "$WORK/root" "$OUT"
cp "$HERE"/sharp/*.js "$HERE"/sharp/package*.json "$HERE"/sharp/.npmrc "$PEER"/
[ -d "$PEER/node_modules/sharp" ] || (cd "$PEER" && npm ci --no-audit --no-fund)
# The last file of each set corpus.js makes: a corpus from before the 2.8 MP set is made again
# (the same bytes for the files it had, given the same Sharp).
if [ -f "$OUT/anim-480.gif" ] && [ -f "$OUT/photo-2.8mp.avif" ]; then echo "corpus in $OUT"; exit 0; fi
cd "$WORK/debs"
for pkg in plasma-workspace-wallpapers mate-backgrounds; do
  ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg" \
    || { echo "apt-get download $pkg failed: run 'apt-get update' first" >&2; exit 1; }
done
# Unpack only the four photos, into the work folder; nothing is installed.
dpkg-deb --fsys-tarfile plasma-workspace-wallpapers_*.deb | tar -x -C "$WORK/root" \
  ./usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg ./usr/share/wallpapers/Path/contents/images/2560x1600.jpg
dpkg-deb --fsys-tarfile mate-backgrounds_*.deb | tar -x -C "$WORK/root" \
  ./usr/share/backgrounds/mate/nature/LadyBird.jpg ./usr/share/backgrounds/mate/nature/RainDrops.jpg
(cd "$PEER" && node corpus.js "$WORK/root" "$OUT")
echo "corpus in $OUT (manifest: $WORK/corpus-manifest.txt)"
