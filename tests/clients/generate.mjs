// Generates the TypeScript types of docs/openapi.json with openapi-typescript's Node API:
//
//   node generate.mjs path/to/openapi.json out/schema.ts
//
// As the CLI would, plus the one transform openapi-typescript documents for files: a schema of
// `format: binary` is a `Blob` (the CLI types it `string`, so an upload needs a cast).
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [input, output] = process.argv.slice(2);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const ast = await openapiTS(pathToFileURL(input), {
  transform(schemaObject) {
    if (schemaObject.format === "binary") return BLOB;
  },
});
fs.writeFileSync(output, astToString(ast));
