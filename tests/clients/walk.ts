// The walk-through with the TypeScript client: openapi-fetch over the types openapi-typescript
// generated from docs/openapi.json (generate.mjs: `format: binary` is a Blob).
//
//   node out/walk.js BASE_URL IMAGE.png
//
// run.sh generates schema.ts beside this file (in a temporary directory) and compiles both with
// `tsc --strict`: no cast, no `any`. Only the generated client talks to the server: register,
// log in, upload (multipart and raw bytes), sign a URL, fetch the variant through the `/i`
// operation with the URL's `sig` and `exp` as its parameters and no bearer token, see a wrong
// signature refused with the one error model, delete (204), and see the image gone.
import { readFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ErrorResponse = components["schemas"]["ErrorResponse"];

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`walk.ts: ${what}`);
}

const [base, imagePath] = process.argv.slice(2);
check(base !== undefined && imagePath !== undefined, "usage: walk.js BASE_URL IMAGE.png");
const png = new Blob([readFileSync(imagePath)], { type: "image/png" });
const credentials = { username: `ts_${Date.now()}`, password: "generated-typescript-client" };

const anonymous = createClient<paths>({ baseUrl: base });
const registered = await anonymous.POST("/v1/auth/register", { body: credentials });
check(registered.response.status === 201 && registered.data !== undefined, `register: ${registered.response.status}`);
const session = await anonymous.POST("/v1/auth/login", { body: credentials });
check(session.data !== undefined, `login: ${session.response.status} ${JSON.stringify(session.error)}`);
check(session.data.user.username === credentials.username, "login answers the user");
const owner = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${session.data.token}` } });

// Upload: the multipart `file` field (a Blob, as the document's `format: binary` says), then the
// raw bytes as the body.
const uploaded = await owner.POST("/v1/images", {
  body: { file: png },
  bodySerializer(body) {
    const form = new FormData();
    if (body instanceof Blob) throw new Error("walk.ts: the multipart body");
    form.append("file", body.file, "walk.png");
    return form;
  },
});
check(uploaded.data !== undefined, `multipart upload: ${uploaded.response.status} ${JSON.stringify(uploaded.error)}`);
const image = uploaded.data;
check(image.format === "png" && image.width === 64 && image.height === 48, `the image: ${JSON.stringify(image)}`);
const raw = await owner.POST("/v1/images", {
  body: png,
  headers: { "Content-Type": "application/octet-stream" },
  bodySerializer: (body) => body,
});
check(raw.data !== undefined, `raw upload: ${raw.response.status} ${JSON.stringify(raw.error)}`);
check(raw.data.content_hash === image.content_hash, "both uploads are the same bytes");

// A signed, expiring URL for a WebP variant; its ops, exp and sig go to the generated /i call.
const signed = await owner.POST("/v1/images/{id}/url", {
  params: { path: { id: image.id } },
  body: { ops: "w_32,fmt_webp", expires_in: 600 },
});
check(signed.data !== undefined, `sign: ${signed.response.status} ${JSON.stringify(signed.error)}`);
const url = new URL(signed.data.url, base);
const prefix = `/i/${image.id}/`;
check(url.pathname.startsWith(prefix), `signed URL ${signed.data.url}`);
const ops = url.pathname.slice(prefix.length);
const sig = url.searchParams.get("sig");
const exp = Number(url.searchParams.get("exp"));
check(ops === "w_32,fmt_webp" && sig !== null && Number.isSafeInteger(exp), `signed URL ${signed.data.url}`);

// No bearer token here: the signature alone authorises. openapi-fetch percent-encodes the path
// parameter (`w_32%2Cfmt_webp`).
const variant = await anonymous.GET("/i/{id}/{ops}", {
  params: { path: { id: image.id, ops }, query: { sig, exp } },
  parseAs: "arrayBuffer",
});
check(variant.response.status === 200, `variant: ${variant.response.status} ${JSON.stringify(variant.error)}`);
check(variant.response.headers.get("content-type") === "image/webp", "content type image/webp");
check(variant.data !== undefined, "the variant's bytes");
const webp = new Uint8Array(variant.data);
const ascii = (from: number, to: number) => String.fromCharCode(...webp.subarray(from, to));
check(webp.length > 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP", `WebP magic: ${ascii(0, 12)}`);
check(new DataView(variant.data).getUint32(4, true) === webp.length - 8, "the RIFF size is the body's");

// A signature for other ops is refused, in the one error model.
const tampered = await anonymous.GET("/i/{id}/{ops}", {
  params: { path: { id: image.id, ops: "w_33,fmt_webp" }, query: { sig, exp } },
  parseAs: "arrayBuffer",
});
const refused: ErrorResponse | undefined = tampered.error;
check(tampered.response.status === 403 && refused?.error.code === "bad_signature", `tampered: ${JSON.stringify(refused)}`);

for (const id of [image.id, raw.data.id]) {
  const deleted = await owner.DELETE("/v1/images/{id}", { params: { path: { id } } });
  check(deleted.response.status === 204, `delete: ${deleted.response.status} ${JSON.stringify(deleted.error)}`);
}
const gone = await owner.GET("/v1/images/{id}", { params: { path: { id: image.id } } });
const missing: ErrorResponse | undefined = gone.error;
check(gone.response.status === 404 && missing?.error.code === "not_found", `after delete: ${JSON.stringify(missing)}`);
console.log(`walk.ts: register, upload ×2, sign, /i (${webp.length} bytes of WebP), 403, delete, 404: passed`);
