#!/usr/bin/env node
// Compile a solc standard-JSON input with the pinned solc-js.
// Usage: node solc-compile.js INPUT.json OUTPUT.json [IMPORT_ROOT ...]
// Output goes to a file, never a pipe: piped solc-js output has been seen cut at ~62 KB.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const [input, output, ...roots] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: solc-compile.js INPUT.json OUTPUT.json [IMPORT_ROOT ...]");
  process.exit(2);
}
function findImports(p) {
  for (const root of roots) {
    const full = path.join(root, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `import not found: ${p}` };
}
const out = solc.compile(fs.readFileSync(input, "utf8"), { import: findImports });
fs.writeFileSync(output, out);
if (process.argv.includes("--version")) console.log(solc.version());
