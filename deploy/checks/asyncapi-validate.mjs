// Validates an AsyncAPI document with the AsyncAPI parser; prints every diagnostic as one
// JSON line and exits 1 if any is an error (severity 0). Usage: node asyncapi-validate.mjs FILE
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node asyncapi-validate.mjs ASYNCAPI_FILE");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (errors.length > 0 || document === undefined) {
  console.error(`${file}: ${errors.length} error(s)`);
  process.exit(1);
}
console.error(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channels`);
