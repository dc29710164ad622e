import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { exitCodes } from '../exit-codes';
import { runCommand } from './run';

// Config errors exit 2 before any connection: these inventories point at an address nothing listens on.
const quiet = async (argv: string[]) => {
  const original = console.error;
  const lines: string[] = [];
  console.error = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { code: await runCommand(argv), stderr: lines.join('\n') };
  } finally {
    console.error = original;
  }
};

test('bad flags are config errors (exit 2) with the offending value', async () => {
  const forks = await quiet(['--inventory', 'x', '--forks', '0']);
  assert.equal(forks.code, exitCodes.config);
  assert.match(forks.stderr, /--forks: must be a whole number >= 1, got "0"/);
  assert.equal((await quiet(['--output', 'yaml'])).code, exitCodes.config);
  assert.equal((await quiet(['--no-such-flag'])).code, exitCodes.config);
  assert.match((await quiet(['--max-total-fail-percentage', '150'])).stderr, /must be 0-100, got "150"/);
});

test('no inventory and a missing playbook are config errors; no host is touched', async () => {
  const saved = process.env.EPOCH_INVENTORY;
  delete process.env.EPOCH_INVENTORY;
  try {
    assert.match((await quiet(['--check'])).stderr, /no inventory: pass --inventory/);
  } finally {
    if (saved !== undefined) process.env.EPOCH_INVENTORY = saved;
  }
  const dir = mkdtempSync(join(tmpdir(), 'epoch-run-'));
  try {
    writeFileSync(join(dir, 'hosts.yml'), 'all:\n  hosts:\n    h1: {ansible_host: 198.18.201.250, ansible_port: 1}\n');
    writeFileSync(join(dir, 'bad.yml'), '- name: p\n  hosts: all\n  epoch_max_total_fail_percentage: 5\n  vars: {epoch_max_total_fail_percentage: "lots"}\n  tasks: []\n');
    const missing = await quiet(['--inventory', join(dir, 'hosts.yml'), join(dir, 'nope.yml'), '--check']);
    assert.equal(missing.code, exitCodes.config);
    const bad = await quiet(['--inventory', join(dir, 'hosts.yml'), join(dir, 'bad.yml'), '--check']);
    assert.equal(bad.code, exitCodes.config);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('extra vars: key=value pairs are typed like YAML, JSON objects pass through, bad input is an error', async () => {
  const { parseExtraVars } = await import('./run');
  assert.deepEqual(parseExtraVars('epoch_intercept=true count=3 name=web ports=[443,8443]'), { epoch_intercept: true, count: 3, name: 'web', ports: [443, 8443] });
  assert.deepEqual(parseExtraVars('{"epoch_hosts": "canary"}'), { epoch_hosts: 'canary' });
  assert.match(String(parseExtraVars('=oops')), /expected key=value/);
  assert.match(String(parseExtraVars('{"a": ')), /not valid JSON/);
  assert.match(String(parseExtraVars('["a"]')), /^expected key=value/);
});

test('--ask-become-pass without a terminal is a config error naming the alternative; no host is touched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-run-'));
  try {
    writeFileSync(join(dir, 'hosts.yml'), 'all:\n  hosts:\n    h1: {ansible_host: 198.18.201.250, ansible_port: 1, ansible_become: true}\n');
    writeFileSync(join(dir, 'site.yml'), '- name: p\n  hosts: all\n  tasks: []\n');
    const r = await quiet(['--inventory', join(dir, 'hosts.yml'), join(dir, 'site.yml'), '--yes', '-K']);
    assert.equal(r.code, exitCodes.config);
    assert.match(r.stderr, /--ask-become-pass: stdin is not a terminal, so there is no prompt: use --become-password-env VAR/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
