// `agent_preflight`: checks the host can run the agent before anything is installed. Converged (empty plan) when a
// Node ≥ 18.19 is there; otherwise a clear error that names the fix, or, with push_node, a Change that pushes the
// controller's own Node runtime to /opt/epoch-agent/runtime/bin/node.
import { z } from 'zod';
import type { Change } from '../../core/change';
import { ProvisionError } from '../../core/errors';
import type { HostContext, ProvisionModule } from '../module';
import { type ControllerNodeResult, loadControllerNode } from './controller-node';
import { pushedNodePath } from './layout';
import {
  compareVersions,
  type HostRuntimeFacts,
  isDebianFamily,
  isRhelFamily,
  minimumNodeVersion,
  nodeArchOf,
  probeRuntime,
  usableNode,
} from './node-runtime';

export const preflightParams = z
  .object({
    /** Playbook var `epoch_agent_push_node`: push the controller's Node when the host has none that fits. */
    push_node: z.boolean().default(false),
    min_node_version: z
      .string()
      .regex(/^\d+\.\d+\.\d+$/, 'min_node_version must look like 18.19.0')
      .default(minimumNodeVersion),
  })
  .strict();
export type PreflightParams = z.infer<typeof preflightParams>;

export interface PreflightFacts {
  runtime: HostRuntimeFacts;
  /** Only looked at when the host needs a runtime and push_node is on. */
  controllerNode: ControllerNodeResult | null;
}

/** Raised by plan when the host cannot run the agent; the runner reports the host as failed. */
export class PreflightError extends ProvisionError {
  constructor(message: string) {
    super(message, 'preflight');
  }
}

export const agentPreflight: ProvisionModule<PreflightParams, PreflightFacts> = {
  name: 'agent_preflight',
  params: preflightParams,
  async gather(host: HostContext, params: PreflightParams): Promise<PreflightFacts> {
    const runtime = await probeRuntime(host.transport, host.name, (message) => new PreflightError(message), host.memo);
    const needsPush = params.push_node && usableNode(runtime.nodes, params.min_node_version) === null;
    return { runtime, controllerNode: needsPush ? loadControllerNode() : null };
  },
  plan(params: PreflightParams, facts: PreflightFacts): Change[] {
    if (usableNode(facts.runtime.nodes, params.min_node_version)) return [];
    if (!params.push_node) throw new PreflightError(missingNodeMessage(facts.runtime, params.min_node_version));
    return [pushNodeChange(params, facts)];
  },
};

/** The exact text operators see; unit tests pin it. */
export function missingNodeMessage(runtime: HostRuntimeFacts, minimum: string): string {
  const found = runtime.nodes.length === 0
    ? 'no node or nodejs was found in PATH'
    : `found ${runtime.nodes.map((n) => `${n.path} ${n.version ?? '(does not run)'}`).join(', ')}`;
  let fix: string;
  if (isDebianFamily(runtime)) fix = 'run `apt-get install nodejs` (Debian 12 ships 18.19)';
  else if (isRhelFamily(runtime)) fix = 'run `dnf module install nodejs:18`';
  else fix = 'install Node.js 18.19 or newer (`apt-get install nodejs` on Debian 12, `dnf module install nodejs:18` on RHEL 9)';
  return `epoch-agent needs Node.js >= ${minimum}, but ${found}. Fix: ${fix}, or set \`epoch_agent_push_node: true\` to push the controller's Node runtime to ${pushedNodePath}.`;
}

function pushNodeChange(params: PreflightParams, facts: PreflightFacts): Change {
  const runtime = facts.runtime;
  const cannot = (why: string) => new PreflightError(`${missingNodeMessage(runtime, params.min_node_version)} push_node is set, but ${why}.`);
  const result = facts.controllerNode;
  if (!result) throw cannot('the controller runtime was not inspected');
  if (!result.ok) throw cannot(result.reason);
  const node = result.node;
  const hostArch = nodeArchOf(runtime.machine);
  if (hostArch !== node.arch) throw cannot(`the host is ${runtime.machine || 'of unknown architecture'} and the controller's node is ${node.arch}`);
  if (runtime.glibc === null) throw cannot('the host has no glibc (musl?), and the controller\'s node needs glibc');
  if (compareVersions(runtime.glibc, node.requiredGlibc) < 0) {
    throw cannot(`the host has glibc ${runtime.glibc} and the controller's node needs glibc >= ${node.requiredGlibc}`);
  }
  if (compareVersions(node.version, params.min_node_version) < 0) throw cannot(`the controller's node is ${node.version}`);
  return {
    id: `file:${pushedNodePath}`,
    summary: `push the controller's Node ${node.version} (${node.arch}, ${Math.round(node.payloadBytes / 1e6)} MB gzip) to ${pushedNodePath}`,
    diff: { subject: pushedNodePath, before: '(absent)\n', after: `node ${node.version} sha256 ${node.sha256}\n` },
    steps: [{ kind: 'run', argv: ['sh', '-c', pushNodeScript, 'epoch-push-node', pushedNodePath, node.sha256], stdin: node.payloadBase64, timeoutMs: 600_000 }],
    undo: [{ kind: 'run', argv: ['rm', '-f', pushedNodePath] }],
  };
}

// Temp file beside the target, checksum and a trial run, then rename.
const pushNodeScript = `set -eu
target=$1 sum=$2
dir=\${target%/*}
mkdir -p "$dir"
tmp=$(mktemp "$dir/.node.tmp-XXXXXX")
trap 'rm -f "$tmp"' EXIT
base64 -d | gzip -dc > "$tmp"
echo "$sum  $tmp" | sha256sum -c --quiet --strict
chmod 0755 "$tmp"
"$tmp" --version > /dev/null
mv -f "$tmp" "$target"
`;
