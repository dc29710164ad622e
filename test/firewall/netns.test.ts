// Real-part tests of the firewall module in throwaway network namespaces (never the machine's own netfilter):
// for each backend (nft, iptables-nft, iptables-legacy) the rendered rules are applied by the real on-host script,
// a connection to 198.18.202.2:443 is really REDIRECTed to a stand-in agent while the agent's uid reaches the real
// target, re-applying changes nothing, killing the agent makes 443 flow directly (the no-systemd watchdog), and
// removal leaves the ruleset byte-identical. Commit-confirmed is tested with the setsid sleeper (no systemd here).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { type FirewallFacts, gatherScript, managedPaths, parseGatherOutput } from '../../provisioner/src/modules/firewall/facts';
import { scriptPath, stagedScriptPath } from '../../provisioner/src/modules/firewall/host-files';
import { epochFirewallScript } from '../../provisioner/src/modules/firewall/host-scripts/epoch-firewall-sh';
import { type FirewallParams, firewallParams } from '../../provisioner/src/modules/firewall/params';
import { chooseBackend, desiredFiles, planFirewall } from '../../provisioner/src/modules/firewall/plan';
import { buildDesired } from '../../provisioner/src/modules/firewall/model';

type Backend = 'nft' | 'iptables-nft' | 'iptables-legacy';
const tools = new URL('./tcp-tools.mjs', import.meta.url).pathname;
const AGENT = { user: 'daemon', uid: 1, gid: 1 };
const CLIENT = { uid: 65534, gid: 65534 };
const HOST_ADDR = '198.18.202.1';
const TARGET_ADDR = '198.18.202.2';
const HEALTH_PORT = 19090;

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip =
  process.getuid?.() !== 0 ? 'needs root (network namespaces)'
  : !['ip', 'nft', 'iptables-nft-restore', 'iptables-legacy-restore', 'setpriv', 'setsid', 'curl'].every(has) ? 'needs ip, nft, iptables-nft/legacy, setpriv, setsid, curl'
  : spawnSync('getent', ['passwd', AGENT.user]).status !== 0 ? `needs user ${AGENT.user} as the stand-in agent user`
  : undefined;

let seq = 0;

interface Ns {
  host: string;
  target: string;
  root: string;
  exec(argv: readonly string[], opts?: { uid?: { uid: number; gid: number }; stdin?: string; env?: Record<string, string> }): { code: number | null; out: string; err: string };
  ok(argv: readonly string[], opts?: { stdin?: string }): string;
  script(...args: string[]): string;
  startAgent(): void;
  stopAgent(): void;
  connect(as: { uid: number; gid: number }): string;
  /** Starts `tcp-tools serve NAME PORT` in the host namespace (killed at teardown). */
  serve(name: string, port: number): void;
  /** Connects from the target namespace to the host's address (inbound traffic). */
  connectInbound(port: number): string;
}

/** Host namespace 198.18.202.1 and target namespace 198.18.202.2 (port 443 answers "target"), joined by a veth. */
async function withHostNs(fn: (ns: Ns) => Promise<void>): Promise<void> {
  seq += 1;
  const host = `epfw-h${process.pid}-${seq}`;
  const target = `epfw-t${process.pid}-${seq}`;
  const root = mkdtempSync(join(tmpdir(), 'epfw-root-'));
  const children: ChildProcess[] = [];
  let agent: ChildProcess | null = null;
  const sh = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  const spawnIn = (ns: string, argv: string[]) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const waitPort = (ns: string, port: number) => {
    for (let i = 0; i < 50; i++) {
      if (spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', `ss -Htln "sport = :${port}" | grep -q .`]).status === 0) return;
      spawnSync('sleep', ['0.1']);
    }
    throw new Error(`nothing listens on port ${port} in ${ns} after 5 s`);
  };
  try {
    sh(['ip', 'netns', 'add', host]);
    sh(['ip', 'netns', 'add', target]);
    sh(['ip', '-n', host, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', target]);
    for (const [ns, addr] of [[host, HOST_ADDR], [target, TARGET_ADDR]] as const) {
      sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      sh(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    spawnIn(target, [process.execPath, tools, 'serve', 'target', '443']);
    waitPort(target, 443);
    const exec: Ns['exec'] = (argv, opts = {}) => {
      const prefix = opts.uid ? ['setpriv', `--reuid=${opts.uid.uid}`, `--regid=${opts.uid.gid}`, '--clear-groups'] : [];
      const r = spawnSync('ip', ['netns', 'exec', host, ...prefix, ...argv], {
        encoding: 'utf8', input: opts.stdin, timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...opts.env },
      });
      return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
    };
    const ok: Ns['ok'] = (argv, opts = {}) => {
      const r = exec(argv, opts);
      if (r.code !== 0) throw new Error(`\`${argv.join(' ')}\` in ${host} exited ${r.code}: ${r.err || r.out}`);
      return r.out;
    };
    const ns: Ns = {
      host,
      target,
      root,
      exec,
      ok,
      script: (...args) => {
        const r = exec([join(root, stagedScriptPath), ...args], { env: { EPOCH_FW_ROOT: root } });
        if (r.code !== 0) throw new Error(`epoch-firewall ${args.join(' ')} exited ${r.code}: ${r.err || r.out}`);
        return r.out;
      },
      startAgent: () => {
        agent = spawnIn(host, ['setpriv', `--reuid=${AGENT.uid}`, `--regid=${AGENT.gid}`, '--clear-groups', process.execPath, tools, 'serve', 'agent', '8443', String(HEALTH_PORT)]);
        waitPort(host, 8443);
        waitPort(host, HEALTH_PORT);
      },
      stopAgent: () => {
        if (agent?.pid) process.kill(agent.pid, 'SIGKILL');
        agent = null;
      },
      connect: (as) => exec([process.execPath, tools, 'connect', TARGET_ADDR, '443'], { uid: as }).out.trim(),
      serve: (name, port) => {
        spawnIn(host, [process.execPath, tools, 'serve', name, String(port)]);
        waitPort(host, port);
      },
      connectInbound: (port) =>
        (spawnSync('ip', ['netns', 'exec', target, process.execPath, tools, 'connect', HOST_ADDR, String(port)], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '').trim(),
    };
    await fn(ns);
  } finally {
    // The watchdog (if any) by its pid file, then our own children, all by PID.
    const pidFile = join(root, 'run/epoch-firewall-watchdog.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (pid > 1) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    for (const c of children) if (c.pid && c.exitCode === null) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
    // Anything still running in our namespaces (a watchdog, an auto-revert sleeper): by PID.
    for (const ns of [host, target]) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split('\n').map(Number).filter((n) => n > 1)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const ns of [host, target]) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(root, { recursive: true, force: true });
  }
}

/** iptables-save minus what varies by itself: the date comments and legacy's packet counters on chain policies. */
const noComments = (s: string) =>
  s.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/^(:\S+ \S+) \[\d+:\d+\]$/, '$1 [0:0]')).join('\n');

/** The whole ruleset as the backend's own tools print it (exact, except iptables-save's date comments). */
function snapshot(ns: Ns, backend: Backend): string {
  // iptables-nft puts a counter on every rule; counters move with traffic, so they are compared as `counter`.
  const nft = ns.ok(['nft', 'list', 'ruleset']).replace(/counter packets \d+ bytes \d+/g, 'counter');
  if (backend === 'nft') return nft;
  const v = backend === 'iptables-nft' ? 'nft' : 'legacy';
  return [nft, noComments(ns.ok([`iptables-${v}-save`])), noComments(ns.ok([`ip6tables-${v}-save`]))].join('\n==\n');
}

/** Other software's rules, which must survive untouched. */
function seedForeign(ns: Ns, backend: Backend): void {
  if (backend === 'nft') {
    ns.ok(['nft', '-f', '-'], { stdin: 'table inet other_fw {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 counter accept\n\t}\n}\n' });
    // kube-proxy's nftables mode keeps its own nat table.
    ns.ok(['nft', '-f', '-'], { stdin: 'table ip kube-proxy {\n\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n\tchain services {\n\t\tip daddr 198.18.250.10 tcp dport 443 dnat to 198.18.250.20:8443\n\t}\n}\n' });
    return;
  }
  const v = backend === 'iptables-nft' ? 'nft' : 'legacy';
  // What Docker and kube-proxy (iptables mode) leave in nat, plus a filter rule (ufw-like).
  ns.ok([`iptables-${v}-restore`, '-w', '--noflush'], {
    stdin: '*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING\n-A KUBE-SERVICES -d 198.18.250.10/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.18.250.20:8443\nCOMMIT\n*nat\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n*filter\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n',
  });
  ns.ok([`ip6tables-${v}-restore`, '-w', '--noflush'], { stdin: '*nat\n:DOCKER - [0:0]\n-A OUTPUT -j DOCKER\nCOMMIT\n' });
}

/** The real gather script, run in the namespace; file facts come from the relocated root. */
function gather(ns: Ns, p: FirewallParams): FirewallFacts {
  const out = ns.ok(['sh', '-s'], { stdin: gatherScript(p) });
  const facts = parseGatherOutput(p, out, '');
  for (const path of managedPaths(p)) {
    const file = join(ns.root, path);
    facts.files[path] = existsSync(file) ? readFileSync(file, 'utf8') : null;
  }
  const pidFile = join(ns.root, 'run/epoch-firewall-watchdog.pid');
  facts.bindingActive = existsSync(pidFile) && spawnSync('kill', ['-0', readFileSync(pidFile, 'utf8').trim()]).status === 0;
  return facts;
}

/** What the plan's steps do, with every path under the relocated root: arm, write files, activate. */
function applyPlan(ns: Ns, p: FirewallParams, facts: FirewallFacts, revertSeconds?: number): string {
  const changes = planFirewall(p, facts);
  assert.ok(changes.length > 0);
  const arm = changes[0]!;
  assert.equal(arm.id, 'firewall:arm-revert');
  const armStep = arm.steps[0]!;
  assert.equal(armStep.kind, 'run');
  const [gen, secs] = armStep.kind === 'run' ? armStep.argv.slice(-2) : [];
  const staged = join(ns.root, stagedScriptPath);
  mkdirSync(dirname(staged), { recursive: true });
  writeFileSync(staged, epochFirewallScript, { mode: 0o755 });
  const armed = ns.script('arm', gen!, revertSeconds !== undefined ? String(revertSeconds) : secs!);
  const files = desiredFiles(p, facts, chooseBackend(p, facts), buildDesired(p, {
    agentUid: AGENT.uid, agentGid: AGENT.gid, excludeUids: [], controllerAddress: facts.controllerAddress,
  }));
  for (const [path, content] of Object.entries(files)) {
    const file = join(ns.root, path);
    if (content === null) rmSync(file, { force: true });
    else {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content, { mode: path === scriptPath ? 0o755 : 0o644 });
    }
  }
  ns.script('activate');
  return armed.match(/armed (\S+)/)?.[1] ?? '';
}

const paramsFor = (backend: Backend, extra: object = {}) =>
  firewallParams.parse({ backend, agentUser: AGENT.user, agentGroup: AGENT.user, healthUrl: `http://127.0.0.1:${HEALTH_PORT}/healthz`, revertSeconds: 10, ...extra });

async function until(what: string, limitMs: number, check: () => boolean): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - start;
}

for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
  test(`${backend}: install redirects, agent uid bypasses, re-apply is a no-op, dead agent fails open, removal is exact`, { skip, timeout: 120_000 }, async () => {
    await withHostNs(async (ns) => {
      seedForeign(ns, backend);
      const before = snapshot(ns, backend);
      assert.equal(ns.connect(CLIENT), 'target', 'before install, 443 reaches the real target');
      ns.startAgent();
      const p = paramsFor(backend);

      const fresh = gather(ns, p);
      assert.deepEqual(fresh.agent, { active: true, healthy: true });
      assert.deepEqual(planFirewall(p, fresh).map((c) => c.id), ['firewall:arm-revert', 'firewall:files', 'firewall:activate']);
      applyPlan(ns, p, fresh);
      ns.script('confirm');

      // Redirected for a normal uid; the agent's own uid reaches the real server (no loop).
      assert.equal(ns.connect(CLIENT), 'agent');
      assert.equal(ns.connect(AGENT), 'target');

      // Converged: the semantic comparison of the live state finds nothing to do.
      const installed = snapshot(ns, backend);
      assert.deepEqual(planFirewall(p, gather(ns, p)), []);
      ns.script('load');
      assert.equal(snapshot(ns, backend), installed, 're-loading leaves the ruleset identical (no duplicate rules)');

      // Kill the agent: the watchdog parks the rules and 443 flows directly.
      ns.stopAgent();
      const down = await until('443 flows directly after the agent died', 2000, () => ns.connect(CLIENT) === 'target');
      assert.ok(down <= 2000, `direct after ${down} ms`);
      // iptables backends park IPv4 and IPv6 with two restores (one per family, no transaction spans both): the IPv6
      // one may land a moment after IPv4 traffic already flows directly.
      await until('both families parked', 2000, () => !/redirect to|REDIRECT/.test(snapshot(ns, backend)));
      // Parked, not deleted: our nat chains stay (so conntrack keeps tracking connections), nothing is redirected,
      // and a plan made while the agent is down finds that converged.
      const parked = snapshot(ns, backend);
      assert.doesNotMatch(parked, /redirect to|REDIRECT/);
      assert.match(parked, backend === 'nft' ? /table inet epoch_provision \{[\s\S]*ct state new return/ : /^-A OUTPUT -j EPOCH_OUTPUT$/m);
      assert.deepEqual(planFirewall(p, gather(ns, p)), []);
      ns.startAgent();
      await until('redirected again after the agent came back', 5000, () => ns.connect(CLIENT) === 'agent');

      // Removal: exactly the ruleset we started with.
      ns.script('purge');
      assert.equal(snapshot(ns, backend), before);
      assert.equal(ns.connect(CLIENT), 'target');
    });
  });
}

test('iptables-nft on a host without a nat table: removal deletes the table iptables-nft created', { skip, timeout: 60_000 }, async () => {
  await withHostNs(async (ns) => {
    const before = snapshot(ns, 'iptables-nft');
    ns.startAgent();
    const p = paramsFor('iptables-nft');
    applyPlan(ns, p, gather(ns, p));
    assert.match(ns.ok(['nft', 'list', 'ruleset']), /table ip nat/);
    assert.equal(ns.connect(CLIENT), 'agent');
    ns.script('purge');
    assert.equal(snapshot(ns, 'iptables-nft'), before);
  });
});

test('commit-confirmed (setsid sleeper): unconfirmed changes revert on their own, confirmed ones stay', { skip, timeout: 90_000 }, async () => {
  await withHostNs(async (ns) => {
    const before = snapshot(ns, 'nft');
    ns.startAgent();
    const p = paramsFor('nft');
    // First install, confirmed.
    applyPlan(ns, p, gather(ns, p));
    assert.match(ns.script('confirm'), /confirmed 1 armed/);
    const confirmed = snapshot(ns, 'nft');
    // A second change (one more port), armed for 5 s and never confirmed: the controller "lost the host".
    const p2 = paramsFor('nft', { ports: [443, 4443] });
    applyPlan(ns, p2, gather(ns, p2), 5);
    assert.match(snapshot(ns, 'nft'), /tcp dport \{ 443, 4443 \}/);
    await until('auto-revert restored the confirmed state', 10_000, () => snapshot(ns, 'nft') === confirmed);
    assert.deepEqual(planFirewall(p, gather(ns, p)), [], 'the reverted host is converged on the previous params');
    // Uninstall through the same mechanism: unconfirmed removal comes back, confirmed removal stays.
    ns.script('purge');
    assert.equal(snapshot(ns, 'nft'), before);
  });
});

test('incoming mode (nft): inbound 443 reaches the agent\'s inbound listener; the controller\'s address is excluded', { skip, timeout: 60_000 }, async () => {
  await withHostNs(async (ns) => {
    const before = snapshot(ns, 'nft');
    ns.startAgent();
    ns.serve('service', 443); // what really listens on the host's 443
    ns.serve('inbound', 8444); // the agent's inbound listener (stand-in)
    assert.equal(ns.connectInbound(443), 'service');
    const p = paramsFor('nft', { modes: ['outgoing', 'incoming'], incomingPort: 8444 });
    applyPlan(ns, p, gather(ns, p));
    assert.equal(ns.connectInbound(443), 'inbound');
    assert.equal(ns.connect(CLIENT), 'agent', 'outgoing still redirected');
    assert.deepEqual(planFirewall(p, gather(ns, p)), []);
    // The same rules with the target namespace as the controller: its connections are never redirected.
    const asController = paramsFor('nft', { modes: ['outgoing', 'incoming'], incomingPort: 8444, controllerAddresses: [TARGET_ADDR] });
    applyPlan(ns, asController, gather(ns, asController));
    assert.equal(ns.connectInbound(443), 'service');
    assert.equal(ns.connect(CLIENT), 'target', 'traffic to the controller is never redirected');
    ns.script('purge');
    assert.equal(snapshot(ns, 'nft'), before);
  });
});

test('backend switch: nft rules move to iptables-legacy when legacy rules appear (never both)', { skip, timeout: 60_000 }, async () => {
  await withHostNs(async (ns) => {
    ns.startAgent();
    const p = paramsFor('nft', { backend: 'auto' });
    applyPlan(ns, p, gather(ns, p));
    assert.match(ns.ok(['nft', 'list', 'ruleset']), /table inet epoch_provision/);
    // Docker (legacy) arrives: auto now follows iptables-legacy, and the switch leaves nothing in nf_tables.
    seedForeign(ns, 'iptables-legacy');
    const facts = gather(ns, p);
    assert.equal(chooseBackend(p, facts), 'iptables-legacy');
    applyPlan(ns, p, facts);
    assert.doesNotMatch(ns.ok(['nft', 'list', 'ruleset']), /epoch_provision/);
    assert.match(ns.ok(['iptables-legacy-save']), /^-A OUTPUT -j EPOCH_OUTPUT$/m);
    assert.equal(ns.connect(CLIENT), 'agent');
    assert.deepEqual(planFirewall(p, gather(ns, p)), []);
    ns.script('purge');
  });
});

test('no parked files (written by an older module version): a dead agent still leaves no redirect (rules removed)', { skip, timeout: 60_000 }, async () => {
  await withHostNs(async (ns) => {
    const before = snapshot(ns, 'nft');
    ns.startAgent();
    const p = paramsFor('nft');
    applyPlan(ns, p, gather(ns, p));
    assert.equal(ns.connect(CLIENT), 'agent');
    rmSync(join(ns.root, '/etc/epoch-provision/firewall/parked.nft'));
    ns.stopAgent();
    await until('443 flows directly after the agent died', 2000, () => ns.connect(CLIENT) === 'target');
    await until('our table removed', 2000, () => snapshot(ns, 'nft') === before);
    ns.script('purge');
  });
});

/** Every folder under the relocated /etc and /usr, with its mode: what an undo or purge must give back. */
function folders(ns: Ns): string {
  return execFileSync('find', [join(ns.root, 'etc'), join(ns.root, 'usr'), '-type', 'd', '-printf', '%P %m\n'], { encoding: 'utf8' }).split('\n').sort().join('\n');
}

test('folders: undo of a first install, and purge, remove exactly the folders the install created', { skip, timeout: 60_000 }, async () => {
  await withHostNs(async (ns) => {
    // A host's own folders, and a drop-in folder someone else made before us: these stay whatever happens.
    for (const d of ['etc/systemd/system/epoch-agent.service.d', 'usr/local/lib']) mkdirSync(join(ns.root, d), { recursive: true });
    const before = folders(ns);
    ns.startAgent();
    const p = paramsFor('nft');
    const id = applyPlan(ns, p, gather(ns, p));
    ns.script('confirm');
    assert.ok(existsSync(join(ns.root, 'etc/epoch-provision/firewall')));
    assert.ok(existsSync(join(ns.root, 'usr/local/lib/epoch-provision')));
    // The runner's undo (rollback of the first install): the folders it created go, the others stay.
    ns.script('undo', id.replace(/^\d+-/, '').replace(/:$/, ''));
    assert.equal(folders(ns), before);
    // Install again, then uninstall (purge and the plan's rm of our files): the same folders.
    applyPlan(ns, p, gather(ns, p));
    ns.script('confirm');
    ns.script('purge');
    assert.equal(folders(ns), before);
    assert.deepEqual(planFirewall(firewallParams.parse({ ...p, state: 'absent' }), gather(ns, firewallParams.parse({ ...p, state: 'absent' }))), []);
  });
});

/**
 * A "container" wired as Docker does: bridge docker0 (198.18.203.1) in the host namespace, the container
 * (198.18.203.2) behind a veth on it, the host forwarding between docker0 and eth0. `connect` runs from inside it.
 */
async function withContainer(ns: Ns, fn: (connect: () => string) => Promise<void>): Promise<void> {
  const container = `epfw-c${process.pid}-${seq}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
  try {
    ip('netns', 'add', container);
    ip('-n', ns.host, 'link', 'add', 'docker0', 'type', 'bridge');
    ip('-n', ns.host, 'addr', 'add', '198.18.203.1/24', 'dev', 'docker0');
    ip('-n', ns.host, 'link', 'set', 'docker0', 'up');
    ip('-n', ns.host, 'link', 'add', 'vethc', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', container);
    ip('-n', ns.host, 'link', 'set', 'vethc', 'master', 'docker0', 'up');
    ip('-n', container, 'link', 'set', 'lo', 'up');
    ip('-n', container, 'addr', 'add', '198.18.203.2/24', 'dev', 'eth0');
    ip('-n', container, 'link', 'set', 'eth0', 'up');
    ip('-n', container, 'route', 'add', '198.18.202.0/24', 'via', '198.18.203.1');
    ip('-n', ns.target, 'route', 'add', '198.18.203.0/24', 'via', HOST_ADDR);
    ns.ok(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await fn(() => (spawnSync('ip', ['netns', 'exec', container, process.execPath, tools, 'connect', TARGET_ADDR, '443'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '').trim());
  } finally {
    spawnSync('ip', ['netns', 'del', container]);
  }
}

for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
  test(`${backend}: containerInterfaces redirects container traffic (PREROUTING on docker0) to the agent, fails open, removal is exact`, { skip, timeout: 60_000 }, async () => {
    await withHostNs(async (ns) => {
      await withContainer(ns, async (fromContainer) => {
        seedForeign(ns, backend);
        const before = snapshot(ns, backend);
        assert.equal(fromContainer(), 'target', 'before install, the container reaches the real target (forwarded)');
        ns.startAgent();
        // Without containerInterfaces OUTPUT alone never sees container traffic (the plan warns about it).
        const hostOnly = paramsFor(backend);
        applyPlan(ns, hostOnly, gather(ns, hostOnly));
        assert.equal(ns.connect(CLIENT), 'agent');
        assert.equal(fromContainer(), 'target', 'OUTPUT does not cover the container');

        const p = paramsFor(backend, { containerInterfaces: ['docker0'] });
        applyPlan(ns, p, gather(ns, p));
        ns.script('confirm');
        assert.equal(fromContainer(), 'agent', 'redirected in PREROUTING on docker0');
        assert.equal(ns.connect(CLIENT), 'agent');
        assert.equal(ns.connect(AGENT), 'target');
        assert.deepEqual(planFirewall(p, gather(ns, p)), [], 'converged');

        ns.stopAgent();
        await until('the container reaches the target directly after the agent died', 2000, () => fromContainer() === 'target');
        ns.startAgent();
        await until('the container is redirected again', 5000, () => fromContainer() === 'agent');

        ns.script('purge');
        assert.equal(snapshot(ns, backend), before);
        assert.equal(fromContainer(), 'target');
      });
    });
  });
}

