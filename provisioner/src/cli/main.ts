// epoch-provision: the controller CLI. Each subcommand lives in commands/<name>.ts and returns an exit code.
import { exitCodes } from './exit-codes';

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  lab: async () => (await import('./commands/lab')).labCommand,
  ca: async () => (await import('./commands/ca')).caCommand,
};

const usage = `usage: epoch-provision [--inventory NAME] [options]        run playbooks/site.yml
       epoch-provision lab up [N] [--flavor debian|rhel|mixed] | status | exec HOST -- CMD | down
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
  const load = first ? commands[first] : undefined;
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
