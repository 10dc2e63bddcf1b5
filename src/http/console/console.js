// imgedge console: the owners' web UI. Plain JS, no dependencies; everything goes through the
// public API on the same origin. The page is served with a strict CSP (no inline script or
// style, no eval), so every handler is attached here and styles change only through the CSSOM.
"use strict";

(() => {
  const TOKEN_KEY = "imgedge.console.token";
  // A page fills a laptop screen; thumbnails load only as their tiles scroll into view.
  const PAGE_SIZE = 12;
  const THUMB_OPS = "w_240,h_240,fit_cover";
  const SRCSET_WIDTHS = [320, 640, 960, 1280, 1920];
  const PREVIEW_DEBOUNCE_MS = 400;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    images: new Map(), // id → Image
    cursor: null,
    selected: null, // id of the image open in the builder
    previewSeq: 0,
    previewTimer: 0,
    quotaTimer: 0,
    uploading: false,
    uploadQueue: [],
    presets: [],
    // Thumbnails not yet asked for, waiting for their tile to scroll into view or for quota.
    waitingThumbs: new Map(), // tile media element → load function
    thumbsPending: 0, // thumbnails asked for and not loaded yet (each may cost one transform)
    thumbsForced: false, // the owner chose to load past the quota
    thumbObserver: null,
  };

  // ---------------------------------------------------------------- DOM helpers

  /** createElement with attributes (never `style`), properties prefixed "." and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith(".")) el[name.slice(1)] = value;
      else if (name === "class") el.className = value;
      else if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function show(el, visible) {
    el.hidden = !visible;
  }

  function setError(el, message) {
    el.textContent = message || "";
    show(el, Boolean(message));
  }

  let toastTimer = 0;
  function toast(message, isError) {
    const el = $("toast");
    el.textContent = message;
    el.classList.toggle("error", Boolean(isError));
    show(el, true);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => show(el, false), isError ? 6000 : 3000);
  }

  function formatBytes(n) {
    if (!Number.isFinite(n)) return "";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function absolute(path) {
    return new URL(path, location.origin).href;
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  /** The error of a response body `{"error":{"code","message"}}`, or a generic one. */
  function errorFrom(status, statusText, text, retryAfter) {
    let code = "";
    let message = "";
    try {
      const data = JSON.parse(text);
      if (data && data.error) {
        code = data.error.code || "";
        message = data.error.message || "";
      }
    } catch (_) {
      /* not JSON */
    }
    if (!message) message = status ? `${status} ${statusText || "error"}` : "network error";
    return new ApiError(status, code, message, retryAfter);
  }

  function describe(err) {
    if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
    let text = err.message;
    if (err.code && !text.includes(err.code)) text += ` (${err.code})`;
    if (err.retryAfter) text += ` — retry in ${humanSeconds(Number(err.retryAfter))}`;
    return text;
  }

  function humanSeconds(secs) {
    if (!Number.isFinite(secs)) return "a while";
    if (secs < 90) return `${secs} s`;
    if (secs < 5400) return `${Math.round(secs / 60)} min`;
    return `${Math.round(secs / 3600)} h`;
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const authed = Boolean(state.token) && !path.startsWith("/v1/auth/");
    if (authed) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", "the server could not be reached");
    }
    const text = await res.text();
    if (!res.ok) {
      const err = errorFrom(res.status, res.statusText, text, res.headers.get("Retry-After"));
      if (res.status === 401 && authed) sessionExpired();
      throw err;
    }
    return text ? JSON.parse(text) : null;
  }

  // ---------------------------------------------------------------- ThumbHash
  // Decoder of Evan Wallace's ThumbHash (https://github.com/evanw/thumbhash, public domain
  // algorithm): hash bytes → a small RGBA image, then a PNG data: URL through a canvas.

  function thumbHashToRGBA(hash) {
    const { PI, min, max, cos, round } = Math;
    const header24 = hash[0] | (hash[1] << 8) | (hash[2] << 16);
    const header16 = hash[3] | (hash[4] << 8);
    const lDc = (header24 & 63) / 63;
    const pDc = ((header24 >> 6) & 63) / 31.5 - 1;
    const qDc = ((header24 >> 12) & 63) / 31.5 - 1;
    const lScale = ((header24 >> 18) & 31) / 31;
    const hasAlpha = header24 >> 23;
    const pScale = ((header16 >> 3) & 63) / 63;
    const qScale = ((header16 >> 9) & 63) / 63;
    const isLandscape = header16 >> 15;
    const lx = max(3, isLandscape ? (hasAlpha ? 5 : 7) : header16 & 7);
    const ly = max(3, isLandscape ? header16 & 7 : hasAlpha ? 5 : 7);
    const aDc = hasAlpha ? (hash[5] & 15) / 15 : 1;
    const aScale = (hash[5] >> 4) / 15;

    // The AC coefficients, 4 bits each, low nibble first (saturation boosted 1.25×).
    const acStart = hasAlpha ? 6 : 5;
    let acIndex = 0;
    const decodeChannel = (nx, ny, scale) => {
      const ac = [];
      for (let cy = 0; cy < ny; cy++) {
        for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++) {
          const byte = hash[acStart + (acIndex >> 1)];
          if (byte === undefined) throw new Error("truncated thumbhash");
          ac.push((((byte >> ((acIndex++ & 1) << 2)) & 15) / 7.5 - 1) * scale);
        }
      }
      return ac;
    };
    const lAc = decodeChannel(lx, ly, lScale);
    const pAc = decodeChannel(3, 3, pScale * 1.25);
    const qAc = decodeChannel(3, 3, qScale * 1.25);
    const aAc = hasAlpha ? decodeChannel(5, 5, aScale) : null;

    const ratio = thumbHashAspectRatio(hash);
    const w = round(ratio > 1 ? 32 : 32 * ratio);
    const h = round(ratio > 1 ? 32 / ratio : 32);
    const rgba = new Uint8ClampedArray(w * h * 4);
    const fx = [];
    const fy = [];
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i += 4) {
        let l = lDc;
        let p = pDc;
        let q = qDc;
        let a = aDc;
        for (let cx = 0, n = max(lx, hasAlpha ? 5 : 3); cx < n; cx++) fx[cx] = cos((PI / w) * (x + 0.5) * cx);
        for (let cy = 0, n = max(ly, hasAlpha ? 5 : 3); cy < n; cy++) fy[cy] = cos((PI / h) * (y + 0.5) * cy);
        for (let cy = 0, j = 0; cy < ly; cy++) {
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx * ly < lx * (ly - cy); cx++, j++) l += lAc[j] * fx[cx] * fy2;
        }
        for (let cy = 0, j = 0; cy < 3; cy++) {
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 3 - cy; cx++, j++) {
            const f = fx[cx] * fy2;
            p += pAc[j] * f;
            q += qAc[j] * f;
          }
        }
        if (aAc) {
          for (let cy = 0, j = 0; cy < 5; cy++) {
            for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 5 - cy; cx++, j++) a += aAc[j] * fx[cx] * fy2;
          }
        }
        // LPQ → RGB
        const b = l - (2 / 3) * p;
        const r = (3 * l - b + q) / 2;
        const g = r - q;
        rgba[i] = max(0, 255 * min(1, r));
        rgba[i + 1] = max(0, 255 * min(1, g));
        rgba[i + 2] = max(0, 255 * min(1, b));
        rgba[i + 3] = max(0, 255 * min(1, a));
      }
    }
    return { w, h, rgba };
  }

  function thumbHashAspectRatio(hash) {
    const header = hash[3];
    const hasAlpha = hash[2] & 0x80;
    const isLandscape = hash[4] & 0x80;
    const lx = isLandscape ? (hasAlpha ? 5 : 7) : header & 7;
    const ly = isLandscape ? header & 7 : hasAlpha ? 5 : 7;
    return lx / ly;
  }

  function base64Bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  const placeholderCache = new Map();
  /** A PNG data: URL of a ThumbHash given in standard base64, or null when it cannot decode. */
  function thumbHashDataURL(b64) {
    if (placeholderCache.has(b64)) return placeholderCache.get(b64);
    let url = null;
    try {
      const { w, h, rgba } = thumbHashToRGBA(base64Bytes(b64));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.putImageData(new ImageData(rgba, w, h), 0, 0);
      url = canvas.toDataURL("image/png");
    } catch (e) {
      console.warn("imgedge console: bad thumbhash", e);
    }
    placeholderCache.set(b64, url);
    return url;
  }

  // ---------------------------------------------------------------- session

  function setToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  function sessionExpired() {
    if (!state.token) return;
    logout();
    setError($("auth-error"), "Your session has expired. Please log in again.");
  }

  async function authenticate(kind) {
    const username = $("username").value.trim();
    const password = $("password").value;
    setError($("auth-error"), "");
    if (!username || !password) {
      setError($("auth-error"), "Enter a username and a password.");
      return;
    }
    const buttons = [$("login"), $("register")];
    buttons.forEach((b) => (b.disabled = true));
    try {
      const session = await api("POST", `/v1/auth/${kind}`, { username, password });
      setToken(session.token);
      $("password").value = "";
      await enterApp(session.user);
      if (kind === "register") toast(`Welcome, ${session.user.username}!`);
    } catch (err) {
      setError($("auth-error"), describe(err));
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function logout() {
    setToken(null);
    state.me = null;
    state.images.clear();
    state.cursor = null;
    state.presets = [];
    state.previewSeq++;
    state.waitingThumbs.clear();
    state.thumbsPending = 0;
    state.thumbsForced = false;
    show($("thumbs-paused"), false);
    closeBuilder();
    $("gallery").replaceChildren();
    $("upload-list").replaceChildren();
    $("preset-list").replaceChildren();
    show($("app-view"), false);
    show($("account"), false);
    show($("auth-view"), true);
    show($("toast"), false);
    setError($("auth-error"), "");
    $("username").focus();
  }

  async function enterApp(user) {
    show($("auth-view"), false);
    show($("app-view"), true);
    show($("account"), true);
    if (user) renderUser(user);
    await Promise.all([refreshMe(), loadImages(true), loadPresets()]);
  }

  // ---------------------------------------------------------------- quota and user

  function renderUser(user) {
    $("whoami").textContent = user.username;
    $("plan").textContent = user.plan || "";
    show($("plan"), Boolean(user.plan));
  }

  async function refreshMe() {
    try {
      const me = await api("GET", "/v1/me");
      state.me = me;
      renderUser(me);
      renderQuota(me.quota);
      pumpThumbs();
    } catch (err) {
      if (err.status !== 401) $("quota-text").textContent = "Quota unavailable";
    }
  }

  function renderQuota(q) {
    if (!q) return;
    const limit = Number(q.limit) || 0;
    const used = Number(q.used) || 0;
    const share = limit ? Math.min(1, used / limit) : 1;
    $("quota-text").textContent = `${used} / ${limit} transforms today`;
    const resets = q.resets_at ? new Date(q.resets_at) : null;
    const valid = resets && !Number.isNaN(resets.getTime());
    $("quota-reset").textContent = valid ? `resets in ${humanSeconds(Math.max(0, Math.round((resets - Date.now()) / 1000)))}` : "";
    const bar = $("quota-bar");
    bar.style.width = `${(share * 100).toFixed(1)}%`;
    bar.classList.toggle("warn", share >= 0.8 && share < 1);
    bar.classList.toggle("full", share >= 1);
    const meter = $("quota-meter");
    meter.setAttribute("aria-valuemax", String(limit));
    meter.setAttribute("aria-valuenow", String(used));
    meter.setAttribute("aria-valuetext", `${used} of ${limit} used, ${q.remaining} left`);
    $("quota").title =
      `${q.remaining} of ${limit} transforms left today; cache hits are free` +
      (valid ? `. Resets at ${resets.toLocaleString()}` : "");
  }

  /** Re-reads /v1/me a little later: transforms that ran for thumbnails or previews cost quota. */
  function refreshQuotaSoon() {
    clearTimeout(state.quotaTimer);
    state.quotaTimer = setTimeout(() => {
      if (state.token) refreshMe();
    }, 700);
  }

  // ---------------------------------------------------------------- gallery

  async function loadImages(reset) {
    const more = $("load-more");
    setError($("gallery-error"), "");
    if (reset) {
      state.images.clear();
      state.cursor = null;
      $("gallery").replaceChildren();
    }
    more.disabled = true;
    try {
      let path = `/v1/images?limit=${PAGE_SIZE}`;
      if (!reset && state.cursor) path += `&cursor=${encodeURIComponent(state.cursor)}`;
      const page = await api("GET", path);
      for (const image of page.items) addTile(image, false);
      state.cursor = page.next_cursor || null;
    } catch (err) {
      if (err.status !== 401) setError($("gallery-error"), `Could not list images: ${describe(err)}`);
    } finally {
      more.disabled = false;
      show(more, Boolean(state.cursor));
      updateGalleryState();
    }
  }

  function updateGalleryState() {
    const n = state.images.size;
    show($("gallery-empty"), n === 0);
    $("image-count").textContent = n === 0 ? "" : `${n}${state.cursor ? "+" : ""} image${n === 1 ? "" : "s"}`;
  }

  function tileFor(id) {
    return $("gallery").querySelector(`.tile[data-image-id="${CSS.escape(id)}"]`);
  }

  function addTile(image, prepend) {
    if (state.images.has(image.id)) return;
    state.images.set(image.id, image);
    const media = h("div", { class: "tile-media" });
    const ph = image.placeholder;
    if (ph && ph.color) media.style.backgroundColor = ph.color;
    if (ph && ph.thumbhash) {
      const url = thumbHashDataURL(ph.thumbhash);
      if (url) media.append(h("img", { class: "placeholder", alt: "", src: url, "aria-hidden": "true", draggable: "false" }));
    }
    const thumb = h("img", {
      class: "thumb",
      alt: `${image.format} image, ${image.width} × ${image.height}`,
      decoding: "async",
      draggable: "false",
    });
    media.append(thumb);
    const button = h(
      "button",
      { type: "button", class: "tile-button", "aria-label": `Open image ${image.width} × ${image.height} ${image.format}` },
      media,
    );
    button.addEventListener("click", () => openBuilder(image.id));
    const caption = h(
      "figcaption",
      {},
      h("span", {}, `${image.width}×${image.height}`),
      h("span", { class: "fmt" }, image.format, image.frames > 1 ? h("span", { class: "anim", title: `${image.frames} frames` }, " · anim") : null),
      h("span", {}, formatBytes(image.size_bytes)),
    );
    const toggle = h("input", { type: "checkbox", ".checked": Boolean(image.public) });
    toggle.addEventListener("change", () => setPublic(image.id, toggle));
    const publish = h(
      "label",
      { class: "publish", title: "Public images are served without a signature through your public presets" },
      toggle,
      "Public",
    );
    const tile = h("figure", { class: "tile", dataset: { imageId: image.id } }, button, caption, publish);
    if (prepend) $("gallery").prepend(tile);
    else $("gallery").append(tile);
    deferThumb(media, () => loadThumb(image, thumb, media));
  }

  async function setPublic(id, toggle) {
    const wanted = toggle.checked;
    toggle.disabled = true;
    try {
      const image = await api("PATCH", `/v1/images/${encodeURIComponent(id)}`, { public: wanted });
      state.images.set(id, image);
      toggle.checked = Boolean(image.public);
      toast(image.public ? "Published: your public presets serve it without a signature" : "No longer public");
    } catch (err) {
      toggle.checked = !wanted;
      if (err.status !== 401) toast(`Could not change it: ${describe(err)}`, true);
    } finally {
      toggle.disabled = false;
    }
  }

  // ---------------------------------------------------------------- thumbnail budget
  //
  // A thumbnail is a signed variant: the first view of each costs one transform of the daily
  // quota. So the console asks only for the thumbnails on screen, and never for more than the
  // quota left today unless the owner says so (thumbnails made before are free, but the page
  // cannot tell which those are).

  function deferThumb(media, load) {
    state.waitingThumbs.set(media, load);
    if (!state.thumbObserver && "IntersectionObserver" in window) {
      state.thumbObserver = new IntersectionObserver(
        (entries) => {
          for (const entry of entries) {
            if (entry.isIntersecting) {
              entry.target.dataset.visible = "true";
              state.thumbObserver.unobserve(entry.target);
            }
          }
          pumpThumbs();
        },
        { rootMargin: "100px" },
      );
    }
    if (state.thumbObserver) state.thumbObserver.observe(media);
    else media.dataset.visible = "true";
    pumpThumbs();
  }

  /** Asks for the visible thumbnails the quota allows; says so when it holds some back. */
  function pumpThumbs() {
    const quota = state.me && state.me.quota;
    const remaining = quota ? Number(quota.remaining) || 0 : 0;
    let held = 0;
    for (const [media, load] of state.waitingThumbs) {
      if (!media.isConnected) {
        state.waitingThumbs.delete(media);
        continue;
      }
      if (media.dataset.visible !== "true") continue;
      if (!quota && !state.thumbsForced) continue; // the quota is not known yet
      const tile = media.closest(".tile");
      // The quota read counts what loaded before it; what is still on its way may cost one more.
      if (state.thumbsForced || state.thumbsPending < remaining) {
        state.waitingThumbs.delete(media);
        tile?.querySelector(".tile-load")?.remove();
        state.thumbsPending += 1;
        load();
      } else {
        held += 1;
        if (tile && !tile.querySelector(".tile-load")) {
          // Beside the tile's button, not inside it: one control per click target.
          const button = h("button", { type: "button", class: "btn ghost small tile-load" }, "Load thumbnail");
          button.addEventListener("click", () => {
            state.waitingThumbs.delete(media);
            button.remove();
            state.thumbsPending += 1;
            load();
            pumpThumbs();
          });
          tile.append(button);
        }
      }
    }
    if (held > 0) {
      $("thumbs-paused-text").textContent =
        `${held} thumbnail${held === 1 ? "" : "s"} paused: each may cost one of the ${remaining} transform` +
        `${remaining === 1 ? "" : "s"} left of your daily quota (thumbnails made before are free).`;
    }
    show($("thumbs-paused"), held > 0);
  }

  async function loadThumb(image, thumb, media) {
    try {
      const signed = await api("POST", `/v1/images/${encodeURIComponent(image.id)}/url`, { ops: THUMB_OPS });
      thumb.addEventListener(
        "load",
        () => {
          thumb.classList.add("loaded");
          thumb.dataset.loaded = "true";
          thumbSettled(true);
        },
        { once: true },
      );
      thumb.addEventListener(
        "error",
        () => {
          thumbSettled(false);
          thumbFailed(media, signed.url);
        },
        { once: true },
      );
      thumb.src = signed.url;
    } catch (err) {
      thumbSettled(false);
      if (err.status !== 401) media.append(h("span", { class: "tile-note", title: describe(err) }, shortReason(err)));
    }
  }

  /** A thumbnail asked for has loaded (`spent`: count it against the quota until the next
   * read of it says otherwise; it may have come from the cache) or failed. */
  function thumbSettled(spent) {
    state.thumbsPending = Math.max(0, state.thumbsPending - 1);
    const quota = state.me && state.me.quota;
    if (spent && quota) quota.remaining = Math.max(0, Number(quota.remaining) - 1);
    refreshQuotaSoon();
    pumpThumbs();
  }

  /** An <img> cannot read the error body: ask once more with fetch to show why. */
  async function thumbFailed(media, url) {
    const note = h("span", { class: "tile-note" }, "thumbnail unavailable");
    media.append(note);
    const err = await whyImageFailed(url);
    if (err) {
      note.textContent = shortReason(err);
      note.title = describe(err);
    }
    refreshQuotaSoon();
  }

  function shortReason(err) {
    if (err.code === "quota_exceeded") return "daily quota used up";
    if (err.code === "overloaded") return "server busy, try later";
    return err.message || "thumbnail unavailable";
  }

  async function whyImageFailed(url) {
    try {
      const res = await fetch(url, { cache: "no-store", credentials: "omit" });
      if (res.ok) return null;
      return errorFrom(res.status, res.statusText, await res.text(), res.headers.get("Retry-After"));
    } catch (_) {
      return new ApiError(0, "network", "the image could not be fetched");
    }
  }

  // ---------------------------------------------------------------- upload

  function enqueueFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    for (const file of files) {
      const progress = h("progress", { class: "upload-progress", max: "100", value: "0", "aria-label": `Upload of ${file.name}` });
      const status = h("span", { class: "upload-status" }, "waiting");
      const item = h("li", { class: "upload-item" }, h("span", { class: "upload-name", title: file.name }, file.name), progress, status);
      $("upload-list").append(item);
      state.uploadQueue.push({ file, item, progress, status });
    }
    if (!state.uploading) drainUploads();
  }

  async function drainUploads() {
    state.uploading = true;
    while (state.uploadQueue.length) {
      const job = state.uploadQueue.shift();
      try {
        const image = await uploadOne(job);
        job.item.classList.add("done");
        job.status.textContent = "uploaded";
        job.progress.value = 100;
        addTile(image, true);
        updateGalleryState();
        setTimeout(() => job.item.remove(), 2500);
      } catch (err) {
        job.item.classList.add("failed");
        job.status.textContent = describe(err);
        const dismiss = h("button", { type: "button", class: "btn ghost small", "aria-label": "Dismiss" }, "Dismiss");
        dismiss.addEventListener("click", () => job.item.remove());
        job.item.append(dismiss);
      }
    }
    state.uploading = false;
    refreshMe();
  }

  function uploadOne({ file, progress, status }) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/images");
      xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const pct = Math.round((e.loaded / e.total) * 100);
        progress.value = pct;
        status.textContent = `${pct} % · ${formatBytes(e.loaded)}`;
      });
      xhr.upload.addEventListener("load", () => {
        progress.value = 100;
        status.textContent = "processing…";
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 201 || xhr.status === 200) {
          try {
            resolve(JSON.parse(xhr.responseText));
          } catch (e) {
            reject(new ApiError(xhr.status, "", "unreadable answer"));
          }
          return;
        }
        if (xhr.status === 401) sessionExpired();
        reject(errorFrom(xhr.status, xhr.statusText, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "network", "the upload was interrupted (too large?)")));
      xhr.addEventListener("abort", () => reject(new ApiError(0, "abort", "the upload was cancelled")));
      const form = new FormData();
      form.append("file", file, file.name);
      status.textContent = "0 %";
      xhr.send(form);
    });
  }

  function setupDropzone() {
    const zone = $("dropzone");
    const input = $("file-input");
    let depth = 0;
    zone.addEventListener("click", (e) => {
      if (e.target === input || e.target.closest("label")) return;
      input.click();
    });
    zone.addEventListener("dragenter", (e) => {
      e.preventDefault();
      depth++;
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      if (e.dataTransfer) enqueueFiles(e.dataTransfer.files);
    });
    // A file dropped beside the zone must not navigate away from the console.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => {
      e.preventDefault();
      if (!state.token || !e.dataTransfer || !e.dataTransfer.files.length) return;
      enqueueFiles(e.dataTransfer.files);
    });
    input.addEventListener("change", () => {
      enqueueFiles(input.files);
      input.value = "";
    });
  }

  // ---------------------------------------------------------------- ops builder

  // The grammar's words and bounds (the server's defaults; a test holds them to its grammar).
  const MAX_DIMENSION = 8192;
  const FITS = ["cover", "contain", "fill", "inside", "outside"];
  const FORMATS = ["jpeg", "png", "webp", "avif", "jxl", "gif", "auto"];
  const QUALITY_WORDS = ["auto", "auto:best", "auto:good", "auto:eco"];
  const dimension = (v) => /^[1-9][0-9]{0,4}$/.test(v) && Number(v) <= MAX_DIMENSION;

  // Tokens the structured fields own, by token name.
  const FIELDS = {
    w: { id: "ops-width", valid: dimension },
    h: { id: "ops-height", valid: dimension },
    fit: { id: "ops-fit", valid: (v) => FITS.includes(v) },
    fmt: { id: "ops-format", valid: (v) => FORMATS.includes(v) },
    q: {
      id: "ops-quality",
      valid: (v) => (/^[1-9][0-9]{0,2}$/.test(v) && Number(v) <= 100) || QUALITY_WORDS.includes(v),
    },
  };

  const splitOps = (raw) =>
    raw
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
  const tokenName = (token) => {
    const i = token.indexOf("_");
    return i < 0 ? token : token.slice(0, i);
  };
  const tokenValue = (token) => {
    const i = token.indexOf("_");
    return i < 0 ? "" : token.slice(i + 1);
  };

  /** The fields changed: rebuild the raw ops from them, keeping the other tokens. */
  function fieldsChanged() {
    const tokens = [];
    for (const [name, field] of Object.entries(FIELDS)) {
      const value = $(field.id).value.trim();
      if (value) tokens.push(`${name}_${value}`);
    }
    const owned = new Set(Object.keys(FIELDS).filter((n) => $(FIELDS[n].id).value.trim()));
    const rest = splitOps($("ops-raw").value).filter((t) => {
      const name = tokenName(t);
      if (!(name in FIELDS)) return true;
      // A token the field cannot show (w_auto:640) stays while its field is empty.
      return !owned.has(name) && !FIELDS[name].valid(tokenValue(t));
    });
    $("ops-raw").value = tokens.concat(rest).join(",");
    schedulePreview();
  }

  /** The raw ops changed: show what the fields can of it. */
  function rawChanged() {
    const tokens = splitOps($("ops-raw").value);
    for (const [name, field] of Object.entries(FIELDS)) {
      const token = tokens.find((t) => tokenName(t) === name);
      const value = token ? tokenValue(token) : "";
      $(field.id).value = token && field.valid(value) ? value : "";
    }
    schedulePreview();
  }

  function currentOps() {
    return splitOps($("ops-raw").value).join(",");
  }

  function resetOpsFields(ops) {
    for (const field of Object.values(FIELDS)) $(field.id).value = "";
    $("ops-raw").value = ops || "";
    if (ops) rawChanged();
  }

  function openBuilder(id) {
    const image = state.images.get(id);
    if (!image) return;
    state.selected = id;
    for (const tile of $("gallery").querySelectorAll(".tile.selected")) tile.classList.remove("selected");
    const tile = tileFor(id);
    if (tile) tile.classList.add("selected");
    $("builder-meta").textContent =
      `${image.width} × ${image.height} ${image.format.toUpperCase()}` +
      (image.frames > 1 ? ` · animated, ${image.frames} frames` : "") +
      ` · ${formatBytes(image.size_bytes)} · id ${image.id}`;
    show($("delete-confirm"), false);
    show($("delete"), true);
    setError($("preview-error"), "");
    const preview = $("preview");
    preview.removeAttribute("src");
    preview.dataset.state = "empty";
    $("preview-status").textContent = "";
    $("signed-url").textContent = "";
    $("srcset-snippet").textContent = "";
    resetOpsFields("");
    show($("builder-hint"), false);
    show($("builder"), true);
    // On a phone the panel sits below the whole gallery: bring it into view, and move focus
    // to it either way, so keyboard and screen-reader users land where the change happened.
    const title = $("builder-title");
    title.focus({ preventScroll: true });
    const top = $("builder").getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight * 0.6) $("builder").scrollIntoView({ block: "start" });
    requestPreview();
  }

  function closeBuilder() {
    state.selected = null;
    state.previewSeq++;
    clearTimeout(state.previewTimer);
    show($("builder"), false);
    show($("builder-hint"), Boolean(state.token));
    for (const tile of $("gallery").querySelectorAll(".tile.selected")) tile.classList.remove("selected");
    const preview = $("preview");
    preview.removeAttribute("src");
    preview.dataset.state = "empty";
  }

  function schedulePreview() {
    clearTimeout(state.previewTimer);
    state.previewTimer = setTimeout(requestPreview, PREVIEW_DEBOUNCE_MS);
  }

  async function requestPreview() {
    clearTimeout(state.previewTimer);
    const id = state.selected;
    if (!id) return;
    const image = state.images.get(id);
    const ops = currentOps();
    const seq = ++state.previewSeq;
    const fresh = () => seq === state.previewSeq && state.selected === id;
    $("preview-box").classList.add("loading");
    $("preview-status").textContent = "signing…";
    setError($("preview-error"), "");
    $("ops-raw").removeAttribute("aria-invalid");

    let signed;
    try {
      signed = await api("POST", `/v1/images/${encodeURIComponent(id)}/url`, { ops });
    } catch (err) {
      if (!fresh()) return;
      $("preview-box").classList.remove("loading");
      $("preview-status").textContent = "";
      $("ops-raw").setAttribute("aria-invalid", "true");
      if ($("preview").hasAttribute("src")) $("preview").dataset.state = "stale";
      setError($("preview-error"), describe(err));
      $("signed-url").textContent = "";
      $("srcset-snippet").textContent = "";
      return;
    }
    if (!fresh()) return;
    const url = absolute(signed.url);
    $("signed-url").textContent = url;
    $("signed-url").dataset.path = signed.url;
    $("preview-status").textContent = "rendering…";
    const preview = $("preview");
    preview.dataset.state = "loading";
    preview.onload = () => {
      if (!fresh()) return;
      preview.dataset.state = "loaded";
      $("preview-box").classList.remove("loading");
      $("preview-status").textContent = `${preview.naturalWidth} × ${preview.naturalHeight} px`;
      refreshQuotaSoon();
    };
    preview.onerror = async () => {
      if (!fresh()) return;
      preview.dataset.state = "error";
      $("preview-box").classList.remove("loading");
      $("preview-status").textContent = "";
      const err = await whyImageFailed(signed.url);
      if (fresh()) setError($("preview-error"), err ? describe(err) : "The preview could not be shown.");
      refreshQuotaSoon();
    };
    preview.src = signed.url;
    renderSrcset(id, image, ops, signed.url, fresh);
  }

  async function renderSrcset(id, image, ops, src, fresh) {
    const out = $("srcset-snippet");
    out.classList.remove("error-text");
    const tokens = splitOps(ops);
    if (tokens.some((t) => tokenName(t) === "p")) {
      out.textContent = `<img src="${absolute(src)}" alt="">\n\nA srcset needs ops written out: presets (p_NAME) are not expanded here.`;
      return;
    }
    // The browser applies the pixel ratio to a srcset: dpr_ is refused there.
    const srcsetOps = tokens.filter((t) => tokenName(t) !== "dpr").join(",");
    let answer;
    try {
      answer = await api("POST", `/v1/images/${encodeURIComponent(id)}/srcset`, { ops: srcsetOps, widths: SRCSET_WIDTHS });
    } catch (err) {
      if (!fresh()) return;
      out.classList.add("error-text");
      out.textContent = describe(err);
      return;
    }
    if (!fresh()) return;
    const urls = answer.urls || [];
    if (!urls.length) {
      out.textContent = "";
      return;
    }
    const pick = urls.find((u) => u.width >= 640) || urls[urls.length - 1];
    const ratio = aspectRatio(image, tokens);
    const width = pick.width;
    const height = Math.max(1, Math.round(width * ratio));
    const srcset = urls.map((u) => `${absolute(u.url)} ${u.width}w`).join(",\n          ");
    out.textContent =
      `<img src="${absolute(pick.url)}"\n` +
      `     srcset="${srcset}"\n` +
      `     sizes="(max-width: ${width}px) 100vw, ${width}px"\n` +
      `     width="${width}" height="${height}" loading="lazy" alt="">`;
  }

  /** Height / width of the output of ops on image (for the snippet's width and height). */
  function aspectRatio(image, tokens) {
    const get = (name) => {
      const t = tokens.find((x) => tokenName(x) === name);
      return t ? tokenValue(t) : null;
    };
    const w = Number(get("w"));
    const hh = Number(get("h"));
    if (w > 0 && hh > 0 && (get("fit") || "cover") !== "inside") return hh / w;
    let sw = image.width;
    let sh = image.height;
    const crop = get("crop");
    if (crop) {
      const parts = crop.split(":").map(Number);
      if (parts.length === 4 && parts[2] > 0 && parts[3] > 0) [sw, sh] = [parts[2], parts[3]];
    }
    const rot = get("rot");
    if (rot === "90" || rot === "270") [sw, sh] = [sh, sw];
    return sh / sw;
  }

  // ---------------------------------------------------------------- purge and delete

  async function purgeSelected() {
    const id = state.selected;
    if (!id) return;
    const button = $("purge");
    button.disabled = true;
    try {
      await api("DELETE", `/v1/images/${encodeURIComponent(id)}/variants`);
      toast("Cached variants purged: each is made again on its next request");
    } catch (err) {
      setError($("preview-error"), `Could not purge: ${describe(err)}`);
    } finally {
      button.disabled = false;
    }
  }

  async function deleteSelected() {
    const id = state.selected;
    if (!id) return;
    const button = $("confirm-delete");
    button.disabled = true;
    try {
      await api("DELETE", `/v1/images/${encodeURIComponent(id)}`);
      state.images.delete(id);
      const tile = tileFor(id);
      if (tile) tile.remove();
      closeBuilder();
      updateGalleryState();
      toast("Image deleted");
    } catch (err) {
      setError($("preview-error"), `Could not delete: ${describe(err)}`);
    } finally {
      button.disabled = false;
      show($("delete-confirm"), false);
      show($("delete"), true);
    }
  }

  // ---------------------------------------------------------------- presets

  async function loadPresets() {
    try {
      const answer = await api("GET", "/v1/presets");
      state.presets = answer.items || [];
      renderPresets();
    } catch (err) {
      if (err.status !== 401) setError($("preset-error"), `Could not list presets: ${describe(err)}`);
    }
  }

  function renderPresets() {
    const list = $("preset-list");
    list.replaceChildren();
    for (const preset of state.presets) {
      const use = h("button", { type: "button", class: "btn small preset-use", title: `Use p_${preset.name} in the builder` }, "Use");
      const edit = h("button", { type: "button", class: "btn small preset-edit" }, "Edit");
      const del = h("button", { type: "button", class: "btn small danger-outline preset-delete", "aria-label": `Delete preset ${preset.name}` }, "Delete");
      use.addEventListener("click", () => {
        if (!state.selected) {
          toast("Select an image first");
          return;
        }
        resetOpsFields(`p_${preset.name}`);
        schedulePreview();
      });
      edit.addEventListener("click", () => {
        $("preset-name").value = preset.name;
        $("preset-ops").value = preset.ops;
        $("preset-public").checked = Boolean(preset.public);
        $("preset-ops").focus();
      });
      del.addEventListener("click", async () => {
        if (del.dataset.armed !== "true") {
          del.dataset.armed = "true";
          del.textContent = "Confirm";
          return;
        }
        del.disabled = true;
        try {
          await api("DELETE", `/v1/presets/${encodeURIComponent(preset.name)}`);
          state.presets = state.presets.filter((p) => p.name !== preset.name);
          renderPresets();
          toast(`Preset ${preset.name} deleted`);
        } catch (err) {
          del.disabled = false;
          setError($("preset-error"), describe(err));
        }
      });
      list.append(
        h(
          "li",
          { class: "preset-item", dataset: { presetName: preset.name } },
          h(
            "div",
            {},
            h(
              "div",
              { class: "preset-title" },
              h("code", {}, `p_${preset.name}`),
              h("span", { class: preset.public ? "tag" : "tag private" }, preset.public ? "public" : "private"),
            ),
            h("div", { class: "preset-ops", title: preset.ops }, preset.ops),
          ),
          h("div", { class: "actions" }, use, edit, del),
        ),
      );
    }
    show($("preset-empty"), state.presets.length === 0);
  }

  async function savePreset(e) {
    e.preventDefault();
    const name = $("preset-name").value.trim();
    const ops = splitOps($("preset-ops").value).join(",");
    setError($("preset-error"), "");
    if (!/^[a-z0-9_-]{1,32}$/.test(name)) {
      setError($("preset-error"), "A preset name is 1–32 characters of a–z, 0–9, _ and -.");
      return;
    }
    if (!ops) {
      setError($("preset-error"), "Give the preset some ops.");
      return;
    }
    const button = $("preset-save");
    button.disabled = true;
    try {
      const preset = await api("PUT", `/v1/presets/${encodeURIComponent(name)}`, { ops, public: $("preset-public").checked });
      state.presets = state.presets.filter((p) => p.name !== preset.name).concat([preset]);
      state.presets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      renderPresets();
      $("preset-name").value = "";
      $("preset-ops").value = "";
      $("preset-public").checked = false;
      toast(`Preset ${preset.name} saved`);
    } catch (err) {
      setError($("preset-error"), describe(err));
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- copy

  async function copyFrom(id, button) {
    const text = $(id).textContent;
    if (!text) return;
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (_) {
      ok = false;
    }
    if (!ok) {
      const area = h("textarea", { class: "visually-hidden", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      try {
        ok = document.execCommand("copy");
      } catch (_) {
        ok = false;
      }
      area.remove();
    }
    const label = button.textContent;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = label), 1400);
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    $("auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      authenticate("login");
    });
    $("register").addEventListener("click", () => authenticate("register"));
    $("logout").addEventListener("click", logout);
    $("load-more").addEventListener("click", () => loadImages(false));
    $("thumbs-resume").addEventListener("click", () => {
      state.thumbsForced = true;
      pumpThumbs();
    });
    setupDropzone();

    for (const field of Object.values(FIELDS)) {
      const el = $(field.id);
      el.addEventListener(el.tagName === "SELECT" ? "change" : "input", fieldsChanged);
    }
    $("ops-raw").addEventListener("input", rawChanged);
    $("ops-form").addEventListener("submit", (e) => {
      e.preventDefault();
      requestPreview();
    });
    $("close-builder").addEventListener("click", closeBuilder);
    $("delete").addEventListener("click", () => {
      show($("delete"), false);
      show($("delete-confirm"), true);
      $("cancel-delete").focus();
    });
    $("cancel-delete").addEventListener("click", () => {
      show($("delete-confirm"), false);
      show($("delete"), true);
      $("delete").focus();
    });
    $("confirm-delete").addEventListener("click", deleteSelected);
    $("purge").addEventListener("click", purgeSelected);
    for (const button of document.querySelectorAll("button[data-copy]")) {
      button.addEventListener("click", () => copyFrom(button.dataset.copy, button));
    }
    $("preset-form").addEventListener("submit", savePreset);
    $("preset-from-builder").addEventListener("click", () => {
      const ops = currentOps();
      if (!ops) {
        toast("The builder has no ops yet");
        return;
      }
      $("preset-ops").value = ops;
      $("preset-name").focus();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && state.selected && !$("builder").hidden) closeBuilder();
    });
  }

  async function start() {
    wire();
    if (!state.token) {
      show($("auth-view"), true);
      $("username").focus();
      return;
    }
    // A token from this tab's session: check it before showing the app.
    try {
      const me = await api("GET", "/v1/me");
      await enterApp(me);
    } catch (err) {
      if (err.status !== 401) {
        setError($("auth-error"), describe(err));
        setToken(null);
      }
      show($("auth-view"), true);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
