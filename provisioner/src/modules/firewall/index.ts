// Registers the firewall modules: `firewall` (redirect into the agent, fail open, commit-confirmed) and
// `firewall_confirm` (disarm the on-host auto-revert after verification, over a new connection).
import { registerModule } from '../registry';
import { firewallConfirmModule, firewallModule } from './firewall-module';

registerModule(firewallModule);
registerModule({ ...firewallConfirmModule, freshConnection: true });

export * from './firewall-module';
