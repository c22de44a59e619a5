// Validate an OpenAPI document (a file, or a URL it is fetched from) with two
// maintained validators from the npm registry, pinned by package-lock.json:
//   @seriousme/openapi-schema-validator  the OpenAPI 3.1 JSON Schema, strictly
//   @apidevtools/swagger-parser          what swagger-parser validate does: the
//                                        schema, then $ref resolution and semantics
// Prints one JSON object: {"seriousme": {valid, errors}, "swaggerParser": {valid, error}}.
// Exit 0 when both accept the document, 1 otherwise. Run by tests/e2e/test_openapi_tools.py.
import { readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";
import SwaggerParser from "@apidevtools/swagger-parser";
import YAML from "yaml";

const where = process.argv[2];
if (!where) {
  console.error("usage: node validate-openapi.mjs FILE|URL");
  process.exit(2);
}
let text;
if (/^https?:\/\//.test(where)) {
  const r = await fetch(where);
  if (r.status !== 200) {
    console.error(`GET ${where}: ${r.status}`);
    process.exit(2);
  }
  text = await r.text();
} else {
  text = await readFile(where, "utf8");
}
const doc = YAML.parse(text);
const out = {};

const v = new Validator();
const res = await v.validate(structuredClone(doc));
out.seriousme = { valid: res.valid, version: v.version, errors: res.valid ? [] : res.errors };

try {
  await SwaggerParser.validate(structuredClone(doc));
  out.swaggerParser = { valid: true };
} catch (e) {
  out.swaggerParser = { valid: false, error: String(e && e.message || e).slice(0, 4000) };
}
console.log(JSON.stringify(out));
process.exit(out.seriousme.valid && out.swaggerParser.valid ? 0 : 1);
