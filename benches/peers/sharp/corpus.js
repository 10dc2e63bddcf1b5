'use strict';
// Makes the benchmark corpus from real photographs of Debian's wallpaper packages.
//   node corpus.js <unpacked-package-root> <out-dir>
// Deterministic: fixed crops and seeded grain, so the bytes depend only on the Sharp version.
const fs = require('node:fs');
const path = require('node:path');
const sharp = require('sharp');

const [root, out] = process.argv.slice(2);
const photo = {
  lake: 'usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg', // boats on a lake
  forest: 'usr/share/wallpapers/Path/contents/images/2560x1600.jpg',      // a forest path
  ladybird: 'usr/share/backgrounds/mate/nature/LadyBird.jpg',             // a ladybird on grass
  drops: 'usr/share/backgrounds/mate/nature/RainDrops.jpg',               // drops on leaves
};

// The centred 4:3 part of a photo.
async function fourByThree(name) {
  const file = path.join(root, photo[name]);
  const { width, height } = await sharp(file).metadata();
  const w = Math.min(width, Math.round((height * 4) / 3));
  const h = Math.round((w * 3) / 4);
  return sharp(file).extract({ left: (width - w) >> 1, top: (height - h) >> 1, width: w, height: h });
}

// The centred 3:2 part of a photo, resized with Lanczos3 to 2040x1360 (2.77 MP), as raw pixels:
// the size of DIV2K's validation photos (2040 wide, about 1356 high), which imgproxy's
// image-servers-benchmark serves.
let div2kLike;
async function threeByTwo2040(name) {
  if (!div2kLike) {
    const file = path.join(root, photo[name]);
    const { width, height } = await sharp(file).metadata();
    const w = Math.min(width, Math.round((height * 3) / 2));
    const h = Math.round((w * 2) / 3);
    div2kLike = await sharp(file).extract({ left: (width - w) >> 1, top: (height - h) >> 1, width: w, height: h })
      .resize(2040, 1360, { kernel: 'lanczos3' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  }
  return sharp(div2kLike.data, { raw: div2kLike.info });
}

// Seeded Gaussian-ish grain (mulberry32, sum of four uniforms): an upscaled photo is otherwise
// smoother than a camera's, and cheaper to encode than a real one.
function grain(pixels, channels, sigma, seed) {
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => (next() + next() + next() + next() - 2) * 1.7320508;
  for (let i = 0; i < pixels.length; i += channels) {
    const luma = normal() * sigma;
    for (let c = 0; c < 3; c++) pixels[i + c] = Math.max(0, Math.min(255, pixels[i + c] + luma + normal() * sigma * 0.35));
  }
}

const made = [];
async function make(name, from, how, build) {
  await build(path.join(out, name));
  made.push({ name, from, how });
}

(async () => {
  fs.mkdirSync(out, { recursive: true });
  await make('photo-12mp.jpg', photo.lake, '4:3, Lanczos3 to 4000x3000, grain sigma 4, JPEG q90', async (file) => {
    const { data, info } = await (await fourByThree('lake')).resize(4000, 3000, { kernel: 'lanczos3' })
      .removeAlpha().raw().toBuffer({ resolveWithObject: true });
    grain(data, info.channels, 4, 12345);
    await sharp(data, { raw: info }).jpeg({ quality: 90 }).toFile(file);
  });
  await make('photo-2mp.jpg', photo.forest, '4:3, 1600x1200, JPEG q90', async (file) =>
    (await fourByThree('forest')).resize(1600, 1200).jpeg({ quality: 90 }).toFile(file));
  await make('alpha-1024.png', photo.ladybird, '4:3, 1024x768 RGBA, soft elliptical cut-out, PNG', async (file) => {
    const mask = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="768">
      <defs><radialGradient id="g"><stop offset="70%" stop-color="#fff"/>
      <stop offset="100%" stop-color="#fff" stop-opacity="0"/></radialGradient></defs>
      <ellipse cx="512" cy="384" rx="500" ry="370" fill="url(#g)"/></svg>`);
    await (await fourByThree('ladybird')).resize(1024, 768).ensureAlpha()
      .composite([{ input: mask, blend: 'dest-in' }]).png().toFile(file);
  });
  await make('small-640.jpg', photo.drops, '4:3, 640x480, JPEG q90', async (file) =>
    (await fourByThree('drops')).resize(640, 480).jpeg({ quality: 90 }).toFile(file));
  await make('anim-480.gif', photo.lake, '12 frames of 480x360 panning, 100 ms each, GIF', async (file) => {
    const base = await (await fourByThree('lake')).resize(960, 720).toBuffer();
    const frames = [];
    for (let i = 0; i < 12; i++) {
      frames.push(await sharp(base).extract({ left: i * 40, top: 180 + i * 10, width: 480, height: 360 }).toBuffer());
    }
    await sharp(frames, { join: { animated: true } }).gif({ delay: 100, loop: 0 }).toFile(file);
  });
  // The imgproxy-shaped cases: one 2.8 MP photo in each format, each served in its own format.
  const how2040 = '3:2, Lanczos3 to 2040x1360';
  await make('photo-2.8mp.jpg', photo.lake, `${how2040}, JPEG q80`, async (file) =>
    (await threeByTwo2040('lake')).jpeg({ quality: 80 }).toFile(file));
  await make('photo-2.8mp.png', photo.lake, `${how2040}, PNG`, async (file) =>
    (await threeByTwo2040('lake')).png().toFile(file));
  await make('photo-2.8mp.webp', photo.lake, `${how2040}, WebP q75`, async (file) =>
    (await threeByTwo2040('lake')).webp({ quality: 75 }).toFile(file));
  await make('photo-2.8mp.avif', photo.lake, `${how2040}, AVIF q65`, async (file) =>
    (await threeByTwo2040('lake')).avif({ quality: 65 }).toFile(file));
  const lines = [];
  for (const { name, from, how } of made) {
    const file = path.join(out, name);
    const m = await sharp(file, { pages: -1 }).metadata();
    const frames = m.pages > 1 ? ` x${m.pages}` : '';
    lines.push(`${name}\t${m.width}x${m.pageHeight || m.height}${frames}\t${m.format}${m.hasAlpha ? '+alpha' : ''}` +
      `\t${fs.statSync(file).size} B\t${from}\t${how}`);
  }
  fs.writeFileSync(path.join(path.dirname(out), 'corpus-manifest.txt'), `${lines.join('\n')}\n`);
  console.log(lines.join('\n'));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
