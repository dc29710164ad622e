// Registers the agent modules: agent_preflight (Node runtime), agent_release (push/switch/prune),
// agent_service (user, layout, config, systemd unit or supervisor, start and restart).
import { registerModule } from '../registry';
import { agentRelease } from './agent-release';
import { agentService } from './agent-service';
import { agentPreflight } from './preflight';

registerModule(agentPreflight);
registerModule(agentRelease);
registerModule(agentService);
