// `epoch-provision uninstall`: disaster-recovery removal, i.e. playbooks/uninstall.yml (rules first, then the agent,
// the CA, the user and the files). Accepts every flag of the default command; a second playbook is refused there
// ("one playbook expected").
import { runCommand } from './run';

export async function uninstallCommand(argv: string[]): Promise<number> {
  return runCommand(['playbooks/uninstall.yml', ...argv]);
}
