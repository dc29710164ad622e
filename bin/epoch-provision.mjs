#!/usr/bin/env node
// Runs the bundled controller CLI; `npm run build` produces it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = fileURLToPath(new URL('../dist/epoch-provision.mjs', import.meta.url));
if (!existsSync(bundle)) {
  console.error(`epoch-provision: ${bundle} is missing; run \`npm run build\` first`);
  process.exit(2);
}
await import(bundle);
