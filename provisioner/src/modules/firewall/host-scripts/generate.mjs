#!/usr/bin/env node
// Regenerates epoch-firewall-sh.ts from epoch-firewall.sh, so the provisioner bundle carries the script as a string
// (esbuild inlines it) while the script itself stays a plain, testable shell file. The unit test
// host-script.test.ts fails when the two differ: run `node provisioner/src/modules/firewall/host-scripts/generate.mjs`.
import { readFileSync, writeFileSync } from 'node:fs';

const dir = new URL('.', import.meta.url);
const text = readFileSync(new URL('epoch-firewall.sh', dir), 'utf8');
writeFileSync(
  new URL('epoch-firewall-sh.ts', dir),
  '// GENERATED from epoch-firewall.sh by generate.mjs; do not edit.\n' +
    '// biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansions, not a JS template\n' +
    `export const epochFirewallScript = ${JSON.stringify(text)};\n`,
);
