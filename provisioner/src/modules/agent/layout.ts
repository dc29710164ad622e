// Where the agent lives on a host. One place, so the modules, the unit and the rollback agree.

export const agentUser = 'epoch-agent';
export const agentGroup = 'epoch-agent';
export const agentHome = '/opt/epoch-agent';
export const releasesDir = `${agentHome}/releases`;
export const currentLink = `${agentHome}/current`;
/** The release `current` pointed at before the last switch: what rollback goes back to. */
export const previousLink = `${agentHome}/previous`;
/** Helper scripts that are not part of a release (the readiness probe, the no-systemd supervisor). */
export const libexecDir = `${agentHome}/libexec`;
/** Where an opt-in Node runtime pushed from the controller lives. */
export const pushedNodePath = `${agentHome}/runtime/bin/node`;
export const configDir = '/etc/epoch-agent';
export const configPath = `${configDir}/agent.json`;
export const caDir = `${configDir}/ca`;
export const stateDir = '/var/lib/epoch-agent';
export const unitName = 'epoch-agent.service';
export const unitPath = `/etc/systemd/system/${unitName}`;
export const agentEntry = `${currentLink}/epoch-agent.cjs`;
export const waitHealthyScript = `${libexecDir}/wait-healthy.cjs`;
export const supervisorScript = `${libexecDir}/epoch-agent-supervise.sh`;
export const supervisorPidFile = '/run/epoch-agent/supervisor.pid';
/** Settings the supervisor sources (node path, health address, drain bound). */
export const supervisorEnvPath = `${configDir}/supervise.env`;

/** Release folder names are versions: semver-ish, no slashes, no leading dot. */
export const versionPattern = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;

export const releaseDir = (version: string) => `${releasesDir}/${version}`;
