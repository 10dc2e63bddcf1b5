#!/usr/bin/env bash
# q_auto against a fixed q_80 (benches/auto_quality.rs) on 17 images: the 2560x1600 photos of
# Debian's plasma-workspace-wallpapers and mate-backgrounds (LadyBird, RainDrops), two of the
# former's illustrations, and the console's screenshot. Needs apt lists (`apt-get update` once).
#
#   benches/auto-quality.sh                     # AUTO_WIDTHS=320,1280 AUTO_FORMATS=jpeg,webp
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${IMGBENCH:-/tmp/imgbench}"
export AUTO_CORPUS="$WORK/auto-corpus"
mkdir -p "$WORK/debs" "$WORK/auto-root" "$AUTO_CORPUS"
cd "$WORK/debs"
for pkg in plasma-workspace-wallpapers mate-backgrounds; do
  ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
done
dpkg-deb --fsys-tarfile plasma-workspace-wallpapers_*.deb | tar -x -C "$WORK/auto-root" --wildcards \
  './usr/share/wallpapers/*/contents/images/2560x1600.jpg' './usr/share/wallpapers/Cascade/contents/images/3840x2160.png' \
  './usr/share/wallpapers/Elarun/contents/images/2560x1600.png'
dpkg-deb --fsys-tarfile mate-backgrounds_*.deb | tar -x -C "$WORK/auto-root" \
  ./usr/share/backgrounds/mate/nature/LadyBird.jpg ./usr/share/backgrounds/mate/nature/RainDrops.jpg
for f in "$WORK"/auto-root/usr/share/wallpapers/*/contents/images/*; do
  name=$(echo "$f" | sed 's|.*/wallpapers/\([^/]*\)/.*|\1|'); cp "$f" "$AUTO_CORPUS/$name.${f##*.}"
done
cp "$WORK"/auto-root/usr/share/backgrounds/mate/nature/*.jpg "$ROOT/docs/console-desktop.png" "$AUTO_CORPUS/"
cd "$ROOT" && cargo bench --bench auto_quality
