#!/usr/bin/env node
// Runs the bundled agent (a single CommonJS file that also runs on Node 18.19).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = fileURLToPath(new URL('../dist/agent/epoch-agent.cjs', import.meta.url));
if (!existsSync(bundle)) {
  console.error(`epoch-agent: ${bundle} is missing; run \`npm run build\` first`);
  process.exit(2);
}
createRequire(import.meta.url)(bundle);
