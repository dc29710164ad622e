// `epoch-provision uninstall`: disaster-recovery removal, i.e. playbooks/uninstall.yml (rules first, then the agent,
// the CA, the user and the files). Accepts every flag of the default command.
import { runCommand } from './run';

export async function uninstallCommand(argv: string[]): Promise<number> {
  const positional = argv.find((a) => /\.ya?ml$/.test(a));
  if (positional) {
    console.error(`epoch-provision uninstall: takes no playbook (it runs playbooks/uninstall.yml), got ${positional}`);
    return 2;
  }
  return runCommand(['playbooks/uninstall.yml', ...argv]);
}
