// epoch-provision: the controller CLI. Each subcommand lives in commands/<name>.ts and returns an exit code.
import { exitCodes } from './exit-codes';

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  lab: async () => (await import('./commands/lab')).labCommand,
  inventory: async () => (await import('./commands/inventory')).inventoryCommand,
  ca: async () => (await import('./commands/ca')).caCommand,
  demo: async () => (await import('./commands/demo')).demoCommand,
  rollback: async () => (await import('./commands/rollback')).rollbackCommand,
  uninstall: async () => (await import('./commands/uninstall')).uninstallCommand,
  'agent-rollback': async () => (await import('./commands/agent-rollback')).agentRollbackCommand,
};

const usage = `usage: epoch-provision [--inventory NAME] [options]        run playbooks/site.yml
       epoch-provision lab up [N] [--flavor debian|rhel|mixed] [--name NAME] | status | exec HOST -- CMD | down | clean | image
       epoch-provision --help`;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h') {
    console.log(usage);
    return exitCodes.ok;
  }
  if (first === '--version') {
    console.log(process.env.EPOCH_VERSION ?? 'dev');
    return exitCodes.ok;
  }
  // No subcommand, a leading --flag or a playbook path: the default command, which runs a playbook.
  if (first === undefined || first.startsWith('-') || /\.ya?ml$/.test(first)) return (await import('./commands/run')).runCommand(argv);
  const load = commands[first];
  if (!load) {
    console.error(`epoch-provision: unknown command ${JSON.stringify(first ?? '')}\n${usage}`);
    return exitCodes.config;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`epoch-provision: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(exitCodes.internal);
  },
);
