'use strict';
// The stack imgedge replaces, as a benchmark peer: Express + Sharp, transforming on every request.
//
//   GET /t/:file?w=&h=&fit=cover&fmt=webp&q=80   the file, auto-oriented, resized (never enlarged), encoded
//   GET /raw/:file                                the file's bytes
//   GET /healthz                                  "ok"
//
// PORT (3900), CORPUS (/tmp/imgbench/corpus). No caching of any kind: the file is read and
// transformed on every request, as a cache miss in imgedge is. Sharp keeps its defaults (on glibc
// without jemalloc that is one libvips thread per image); libuv's pool of 4 threads bounds how
// many pipelines run at once, and the libvips operation cache is off (SHARP_CACHE=1 keeps it).
process.env.UV_THREADPOOL_SIZE ||= '4';

const path = require('node:path');
const { readFile } = require('node:fs/promises');
const express = require('express');
const sharp = require('sharp');

const PORT = Number(process.env.PORT || 3900);
const CORPUS = process.env.CORPUS || '/tmp/imgbench/corpus';
if (process.env.SHARP_CACHE !== '1') sharp.cache(false);

const MIME = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', avif: 'image/avif', gif: 'image/gif' };
const FITS = ['cover', 'contain', 'fill', 'inside', 'outside'];

// An optional integer query parameter within [lo, hi]; NaN when malformed.
const int = (value, lo, hi) => {
  if (value === undefined || value === '') return undefined;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  return n >= lo && n <= hi ? n : NaN;
};
// Only plain file names inside the corpus.
const corpusFile = (name) => (/^[\w.-]+$/.test(name) && !name.startsWith('.') ? path.join(CORPUS, name) : null);

const app = express();
app.set('etag', false);
app.disable('x-powered-by');
app.get('/healthz', (_req, res) => res.type('text/plain').send('ok'));

app.get('/t/:file', async (req, res) => {
  const { w, h, q, fit = 'cover', fmt = 'webp' } = req.query;
  const [width, height, quality] = [int(w, 1, 16384), int(h, 1, 16384), int(q, 1, 100)];
  if ([width, height, quality].some(Number.isNaN) || !FITS.includes(fit) || !MIME[fmt]) {
    return res.status(400).type('text/plain').send('bad parameters');
  }
  const file = corpusFile(req.params.file);
  const input = file && (await readFile(file).catch(() => null));
  if (!input) return res.status(404).type('text/plain').send('not found');
  // Sharp's PNG `quality` turns on palette quantisation: pass it only when asked for.
  const options = fmt === 'png' && quality === undefined ? {} : { quality: quality ?? 80 };
  try {
    const out = await sharp(input).rotate().resize({ width, height, fit, withoutEnlargement: true })
      .toFormat(fmt, options).toBuffer();
    res.set({ 'Content-Type': MIME[fmt], 'Content-Length': String(out.length) }).end(out);
  } catch (e) {
    res.status(422).type('text/plain').send(`transform failed: ${e.message}`);
  }
});

app.get('/raw/:file', async (req, res) => {
  const file = corpusFile(req.params.file);
  const bytes = file && (await readFile(file).catch(() => null));
  if (!bytes) return res.status(404).type('text/plain').send('not found');
  const type = MIME[path.extname(file).slice(1).replace('jpg', 'jpeg')] || 'application/octet-stream';
  res.set({ 'Content-Type': type, 'Content-Length': String(bytes.length) }).end(bytes);
});

app.listen(PORT, '127.0.0.1', () => {
  console.log(`sharp peer on 127.0.0.1:${PORT}: corpus ${CORPUS}, libvips ${sharp.versions.vips}, ` +
    `sharp ${sharp.versions.sharp}, concurrency ${sharp.concurrency()}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE}`);
});
