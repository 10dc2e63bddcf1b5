#!/usr/bin/env bash
# The second peer: thumbor from PyPI (Pillow engine: libjpeg-turbo with SIMD and JPEG draft mode).
# Installs it into a venv once, then serves the corpus in the foreground with no storage and no
# result storage, so every request loads and transforms, like a cache miss.
#   benches/peers/thumbor/run.sh [PORT]      (default 3902)
# URLs: /unsafe/300x0/filters:format(webp):quality(80)/photo-12mp.jpg   (0 keeps the aspect ratio)
#       /unsafe/300x0/filters:format(png)/alpha-1024.png                 /healthcheck
# Env: THUMBOR_VENV, CORPUS, PROCESSES (one per core).
set -euo pipefail
PORT="${1:-3902}"
WORK="${IMGBENCH:-/tmp/imgbench}"
VENV="${THUMBOR_VENV:-$WORK/thumbor-venv}"
CORPUS="${CORPUS:-$WORK/corpus}"
[ -x "$VENV/bin/thumbor" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q thumbor; }
CONF="$WORK/thumbor-$PORT.conf"
cat > "$CONF" <<CONF
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '$CORPUS'
ALLOW_UNSAFE_URL = True
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
AUTO_WEBP = False
QUALITY = 80
CONF
exec "$VENV/bin/thumbor" -c "$CONF" -i 127.0.0.1 -p "$PORT" --processes "${PROCESSES:-$(nproc)}" -l warning
