// Registers the agent modules: agent_preflight (Node runtime), agent_release (push/switch/prune),
// agent_user (the system user, before the CA), agent_service (user, layout, config, systemd unit or supervisor, start and restart).
import { registerModule } from '../registry';
import { type AgentReleaseParams, agentRelease } from './agent-release';
import { agentService } from './agent-service';
import { agentUserModule } from './agent-user';
import { agentPreflight } from './preflight';

registerModule(agentPreflight);
// `version: previous` swaps current and previous on every run: skip the plan-again check for it.
registerModule({ ...agentRelease, converges: (p) => (p as AgentReleaseParams).version !== 'previous' });
registerModule(agentService);
registerModule(agentUserModule);
