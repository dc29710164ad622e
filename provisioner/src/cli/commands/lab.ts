// epoch-provision lab: the local lab fleet (see provisioner/src/lab/lab.ts).
//   lab image                                         build or reuse the cached Debian 12 image
//   lab up [N] [--flavor debian|rhel|mixed] [--name NAME] [--inventory-dir DIR]
//   lab status [--name NAME]
//   lab exec [--name NAME] HOST -- CMD [ARG...]
//   lab down [--name NAME]
//   lab clean [--name NAME | --all]                   leftovers of killed runs
import { ensureImage } from '../../lab/image';
import {
  LabUnavailable, defaultLabName, execInHost, hostRunning, labClean, labDown, labUp, listLabs, loadState, preflight,
  type LabFlavor,
} from '../../lab/lab';
import { exitCodes } from '../exit-codes';

const usage = `usage: epoch-provision lab image
       epoch-provision lab up [N] [--flavor debian|rhel|mixed] [--name NAME] [--inventory-dir DIR]   (N defaults to 3)
       epoch-provision lab status [--name NAME]
       epoch-provision lab exec [--name NAME] HOST -- CMD [ARG...]
       epoch-provision lab down [--name NAME]
       epoch-provision lab clean [--name NAME | --all]`;

class UsageError extends Error {}

function parseFlags(args: string[], allowed: string[]): { flags: Map<string, string>; positional: string[]; rest: string[] } {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return { flags, positional, rest: args.slice(i + 1) };
    if (a.startsWith('--')) {
      const [key, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (!allowed.includes(key)) throw new UsageError(`unknown option --${key}`);
      if (key === 'all') {
        flags.set(key, 'true');
        continue;
      }
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`--${key} needs a value`);
      flags.set(key, value);
    } else positional.push(a);
  }
  return { flags, positional, rest: [] };
}

const log = (m: string) => console.error(`lab: ${m}`);

export async function labCommand(argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  try {
    switch (sub) {
      case 'image': {
        parseFlags(args, []);
        preflight();
        const img = await ensureImage(log);
        console.log(img.dir);
        return exitCodes.ok;
      }
      case 'up': {
        const { flags, positional } = parseFlags(args, ['flavor', 'name', 'inventory-dir']);
        process.once('SIGINT', () => {
          console.error('epoch-provision lab: interrupted; hosts started so far keep running: `epoch-provision lab down` removes them');
          process.exit(exitCodes.interrupted);
        });
        if (positional.length > 1) throw new UsageError(`unexpected arguments: ${positional.slice(1).join(' ')}`);
        const count = positional[0] === undefined ? 3 : Number(positional[0]);
        if (!Number.isInteger(count) || count < 1) throw new UsageError(`N: expected a positive whole number, got ${positional[0]}`);
        const flavor = flags.get('flavor') ?? 'debian';
        if (!['debian', 'rhel', 'mixed'].includes(flavor)) throw new UsageError(`--flavor ${flavor}: expected debian, rhel or mixed`);
        const lab = await labUp({
          count,
          flavor: flavor as LabFlavor,
          name: flags.get('name') ?? defaultLabName,
          inventoryDir: flags.get('inventory-dir'),
          log,
        });
        console.log(`lab ${lab.name}: ${lab.hosts.length} host(s) running; inventory ${lab.inventory.hostsFile}`);
        console.log(`try: ssh -F ${lab.inventory.sshConfig} ${lab.hosts[0]?.name} systemctl is-system-running`);
        return exitCodes.ok;
      }
      case 'status': {
        const { flags } = parseFlags(args, ['name']);
        const names = flags.has('name') ? [flags.get('name') as string] : listLabs();
        if (names.length === 0) {
          console.log('no lab is up');
          return exitCodes.ok;
        }
        let allUp = true;
        for (const name of names) {
          const lab = loadState(name);
          if (!lab) {
            console.log(`lab ${name}: not up`);
            continue;
          }
          console.log(`lab ${name} (slot ${lab.slot}, bridge ${lab.bridge} ${lab.controllerAddress}, image ${lab.image.hash})`);
          console.log(`  inventory ${lab.inventory.hostsFile}`);
          console.log(`  upstream  ${lab.upstream.addresses.valid} ${lab.upstream.addresses.untrusted} ${lab.upstream.addresses.wrongHost}`);
          for (const h of lab.hosts) {
            const up = hostRunning(h);
            const sys = up ? (await execInHost(h, ['systemctl', 'is-system-running'], { timeoutMs: 10_000 })).stdout.trim() : 'stopped';
            if (sys !== 'running') allUp = false;
            console.log(`  ${h.name.padEnd(10)} ${h.flavor.padEnd(7)} ${h.address.padEnd(15)} ${sys}`);
          }
        }
        return allUp ? exitCodes.ok : exitCodes.hostsFailed;
      }
      case 'exec': {
        const { flags, positional, rest } = parseFlags(args, ['name']);
        const [hostName] = positional;
        if (!hostName || rest.length === 0) throw new UsageError('lab exec needs HOST -- CMD');
        const name = flags.get('name') ?? defaultLabName;
        const lab = loadState(name);
        if (!lab) throw new UsageError(`lab ${name} is not up`);
        const host = lab.hosts.find((h) => h.name === hostName);
        if (!host) throw new UsageError(`no host ${hostName} in lab ${name}; hosts: ${lab.hosts.map((h) => h.name).join(' ')}`);
        const r = await execInHost(host, rest, { timeoutMs: 3_600_000 });
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        return r.exitCode ?? exitCodes.internal;
      }
      case 'down': {
        const { flags } = parseFlags(args, ['name']);
        const name = flags.get('name') ?? defaultLabName;
        if (!(await labDown(name, log))) console.log(`lab ${name} is not up; nothing to do`);
        return exitCodes.ok;
      }
      case 'clean': {
        const { flags } = parseFlags(args, ['name', 'all']);
        const cleaned = await labClean({ all: flags.has('all'), names: flags.has('name') ? [flags.get('name') as string] : undefined }, log);
        console.log(cleaned.length > 0 ? `cleaned lab(s): ${cleaned.join(', ')}` : 'no recorded lab to clean; strays (if any) removed');
        return exitCodes.ok;
      }
      case undefined:
      case '--help':
      case '-h':
        console.log(usage);
        return sub === undefined ? exitCodes.config : exitCodes.ok;
      default:
        throw new UsageError(`unknown lab command ${JSON.stringify(sub)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`epoch-provision lab: ${e.message}\n${usage}`);
      return exitCodes.config;
    }
    if (e instanceof LabUnavailable) {
      console.error(`epoch-provision lab: ${e.message}`);
      return exitCodes.config;
    }
    throw e;
  }
}
