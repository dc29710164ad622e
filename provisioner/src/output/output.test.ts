import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RunEvent } from '../core/run-events';
import { chooseOutputMode, createRenderer } from './create-renderer';
import { formatDiff, plainLine } from './plain-renderer';
import { formatRecap } from './recap-table';
import { Redactor, secretValuesOf } from './redact';
import { RunLog } from './run-log';

const recap = { host: 'web1.example.com', ok: 3, changed: 1, failed: 0, skipped: 1, unreachable: 0, notRun: false };

test('PLAY RECAP matches Ansible column layout', () => {
  const text = formatRecap([recap, { ...recap, host: 'db1', ok: 0, changed: 0, skipped: 0, notRun: true }]);
  const lines = text.split('\n');
  assert.match(lines[0] ?? '', /^PLAY RECAP \*+$/);
  assert.equal(lines[1], 'web1.example.com           : ok=3    changed=1    unreachable=0    failed=0    skipped=1');
  assert.match(lines[2] ?? '', /^db1 {23} : ok=0 .* not-run/);
});

test('output mode: json when asked, tree only on an interactive TTY outside CI', () => {
  assert.equal(chooseOutputMode('json', true, {}), 'json');
  assert.equal(chooseOutputMode(undefined, true, {}), 'tree');
  assert.equal(chooseOutputMode(undefined, true, { CI: 'true' }), 'plain');
  assert.equal(chooseOutputMode(undefined, false, {}), 'plain');
});

test('json mode writes one parseable event per line', () => {
  const out: string[] = [];
  const r = createRenderer('json', (t) => out.push(t));
  const events: RunEvent[] = [
    { type: 'run-start', runId: 'r1', check: true, at: 'now' },
    { type: 'recap', runId: 'r1', hosts: [recap], halted: false, exitCode: 0 },
  ];
  for (const e of events) r.handle(e);
  assert.deepEqual(out.map((l) => JSON.parse(l)), events);
});

test('plain lines show changes with their diff, and halts with the hosts not run', () => {
  const line = plainLine({ type: 'task-result', host: 'h1', task: 'conf', status: 'changed', durationMs: 3, changes: [{ id: 'f', summary: 'update /etc/x', diff: { subject: '/etc/x', before: 'a\nb\n', after: 'a\nc\n' } }] });
  assert.equal(line, 'changed: [h1] conf\n  ~ update /etc/x\n    --- /etc/x (before)\n    +++ /etc/x (after)\n    -b\n    +c');
  assert.match(plainLine({ type: 'rollout-halted', play: 'p', afterBatch: 0, reason: 'canary failed', notRun: ['h2', 'h3'] }) ?? '', /HALTED after batch 1: canary failed\n {2}not run: h2, h3/);
  assert.deepEqual(formatDiff('f', '', 'x\n'), ['    --- f (before)', '    +++ f (after)', '    +x']);
});

test('redaction: registered secrets and secret-named vars never reach the log', () => {
  const r = new Redactor();
  for (const s of secretValuesOf({ ansible_become_password: 'hunter22', api_token: 'tok-123456', ansible_user: 'deploy', port: 22 })) r.add(s);
  r.add('abc');
  assert.equal(r.redact('sudo pw hunter22 and tok-123456 as deploy abc'), 'sudo pw ******** and ******** as deploy abc');
});

test('the run log is 0600 JSON lines with secrets redacted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-log-'));
  try {
    const r = new Redactor();
    r.add('s3cr3t-pass');
    const log = new RunLog(join(dir, 'logs'), 'run1', r);
    log.command({ host: 'h1', command: "env LC_ALL=C mysql -ps3cr3t-pass -e 'select 1'", exitCode: 0, durationMs: 5, timedOut: false, stdin: 'secret' });
    log.event({ type: 'host-unreachable', host: 'h2', message: 'auth failed' });
    log.close();
    const text = readFileSync(log.path, 'utf8');
    assert.ok(!text.includes('s3cr3t-pass'));
    assert.equal(text.trim().split('\n').length, 2);
    assert.equal(JSON.parse(text.split('\n')[0] ?? '').command, "env LC_ALL=C mysql -p******** -e 'select 1'");
    assert.equal((statSync(log.path).mode & 0o777).toString(8), '600');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the listr2 tree is a view: it follows events, including a halt, and settles without hanging', async () => {
  const out: string[] = [];
  const r = createRenderer('tree', (t) => out.push(t));
  const events: RunEvent[] = [
    { type: 'play-start', play: 'site', hosts: ['h1', 'h2', 'h3'], batches: [['h1'], ['h2', 'h3']] },
    { type: 'batch-start', play: 'site', index: 0, of: 2, hosts: ['h1'] },
    { type: 'host-start', host: 'h1' },
    { type: 'task-start', host: 'h1', task: 'conf' },
    { type: 'task-result', host: 'h1', task: 'conf', status: 'failed', changes: [], message: 'disk full', durationMs: 1 },
    { type: 'host-done', host: 'h1', status: 'failed' },
    { type: 'batch-end', play: 'site', index: 0, failed: 1, unreachable: 0, size: 1 },
    { type: 'rollout-halted', play: 'site', afterBatch: 0, reason: 'canary failed', notRun: ['h2', 'h3'] },
  ];
  for (const e of events) r.handle(e);
  await Promise.race([r.settle(), new Promise((_, reject) => setTimeout(() => reject(new Error('listr view did not settle')), 5000))]);
  assert.ok(out.join('').includes('ROLLOUT HALTED after batch 1: canary failed'));
});
