// `agent_release`: puts a verified agent release on the host and makes it current.
//   upload  one tar.gz over stdin, unpacked into releases/<version>.tmp-XXXXXX, checked with sha256sum -c, renamed
//   switch  `current` (and `previous`, what rollback goes back to) replaced atomically: ln -sfn temp + mv -T
//   prune   keep the newest N releases, never the current or the previous one
// Gathering is one remote call: both links, the release list and the sha256 of every file of the target release.
import { z } from 'zod';
import type { Argv, Change, Step } from '../../core/change';
import { ProvisionError } from '../../core/errors';
import type { HostContext, ProvisionModule } from '../module';
import { tryRestartStep } from '../try-restart';
import { type AgentArtifact, loadAgentArtifact } from './artifact';
import { agentHome, currentLink, releaseDir, releasesDir, unitName, versionPattern } from './layout';

export const agentReleaseParams = z
  .object({
    /** The built agent (scripts/build.mjs output), relative to the working directory. */
    artifact_dir: z.string().min(1).default('dist/agent'),
    /**
     * Pin `current` to a release already on the host; default: the artifact's version. `previous` means the release
     * the `previous` link names (a one-shot rollback: the links swap, so that plan never becomes empty by itself).
     */
    version: z.string().regex(versionPattern, 'version must be a release name like 0.1.0, or previous').optional(),
    /** absent: remove /opt/epoch-agent entirely (releases, links, pushed runtime, helper scripts). */
    state: z.enum(['present', 'absent']).default('present'),
    /** Releases kept on the host, the current and previous included. */
    keep_releases: z.number().int().min(2, 'keep_releases must be at least 2 (current and previous)').default(3),
  })
  .strict();
export type AgentReleaseParams = z.infer<typeof agentReleaseParams>;

export interface RemoteReleaseState {
  /** Whether /opt/epoch-agent exists at all. */
  home?: boolean;
  /** Release names `current` / `previous` point at; null when the link is absent or points elsewhere. */
  current: string | null;
  previous: string | null;
  /** Entries of releases/, newest first (ls -t), including leftovers of interrupted uploads. */
  releases: string[];
  /** sha256 by relative path, of the target release's files that exist on the host. */
  targetSums: Record<string, string>;
}

export interface AgentReleaseFacts {
  remote: RemoteReleaseState;
  /**
   * The controller's artifact, when the target is its version (null when pinning a release already on the host).
   * tarballBase64 is null when the host already has every file of it (nothing to upload, so nothing is packed).
   */
  artifact: { version: string; expectedSums: Record<string, string>; tarballBase64: string | null } | null;
  /** The release to make current. */
  target: string;
}

export class ReleaseError extends ProvisionError {
  constructor(message: string) {
    super(message, 'agent-release');
  }
}

const probeScript = `home=$1 version=$2; shift 2
if [ -d "$home" ]; then echo home=yes; fi
echo "current=$(readlink "$home/current" 2>/dev/null)"
echo "previous=$(readlink "$home/previous" 2>/dev/null)"
if [ -d "$home/releases" ]; then (cd "$home/releases" && ls -1t) | sed 's/^/release=/'; fi
if [ "$#" -gt 0 ] && [ -d "$home/releases/$version" ]; then
  cd "$home/releases/$version" && sha256sum -- "$@" 2>/dev/null | sed 's/^/sum=/'
fi
exit 0
`;

export function releaseProbeArgv(version: string, files: readonly string[]): Argv {
  return ['sh', '-c', probeScript, 'epoch-release-probe', agentHome, version, ...files];
}

/** Links are relative (`releases/<version>`), so the tree can be inspected or moved as a whole; absolute ones are read too. */
const releaseNameOf = (link: string) => {
  for (const prefix of ['releases/', `${releasesDir}/`]) {
    if (link.startsWith(prefix) && versionPattern.test(link.slice(prefix.length))) return link.slice(prefix.length);
  }
  return null;
};

export function parseReleaseProbe(stdout: string): RemoteReleaseState {
  const state: RemoteReleaseState = { current: null, previous: null, releases: [], targetSums: {} };
  for (const line of stdout.split('\n')) {
    if (line === 'home=yes') state.home = true;
    else if (line.startsWith('current=')) state.current = releaseNameOf(line.slice(8).trim());
    else if (line.startsWith('previous=')) state.previous = releaseNameOf(line.slice(9).trim());
    else if (line.startsWith('release=')) state.releases.push(line.slice(8));
    else if (line.startsWith('sum=')) {
      const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.slice(4));
      if (m) state.targetSums[m[2]!] = m[1]!;
    }
  }
  return state;
}

export async function gatherRemoteRelease(host: HostContext, version: string, files: readonly string[]): Promise<RemoteReleaseState> {
  const r = await host.transport.exec(releaseProbeArgv(version, files), { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new ReleaseError(`release probe \`${r.command}\` exited ${r.exitCode}: ${r.stderr.trim()}`);
  return parseReleaseProbe(r.stdout);
}

export const agentRelease: ProvisionModule<AgentReleaseParams, AgentReleaseFacts> = {
  name: 'agent_release',
  params: agentReleaseParams,
  async gather(host, params) {
    if (params.state === 'absent') return { remote: await gatherRemoteRelease(host, '', []), target: '', artifact: null };
    if (params.version === 'previous') {
      const remote = await gatherRemoteRelease(host, '', []);
      if (remote.previous === null) throw new ReleaseError(`version: previous, but the host has no previous release (current is ${remote.current ?? '(none)'})`);
      return { remote: await gatherRemoteRelease(host, remote.previous, []), target: remote.previous, artifact: null };
    }
    let artifact: AgentArtifact | null = null;
    if (params.version === undefined) artifact = loadAgentArtifact(params.artifact_dir);
    else {
      // A pinned version that is also the artifact's: uploading it is allowed. Anything else must be on the host.
      try {
        const candidate = loadAgentArtifact(params.artifact_dir);
        if (candidate.version === params.version) artifact = candidate;
      } catch {
        artifact = null;
      }
    }
    const target = params.version ?? artifact!.version;
    const remote = await gatherRemoteRelease(host, target, artifact ? Object.keys(artifact.expectedSums) : []);
    // The tarball only for a host that lacks the release or has it damaged: what plan uploads (sumsMatch, below).
    const upload = artifact !== null && !sumsMatch(artifact.expectedSums, remote.targetSums);
    return {
      remote,
      target,
      artifact: artifact && { version: artifact.version, expectedSums: artifact.expectedSums, tarballBase64: upload ? artifact.tarball.toString('base64') : null },
    };
  },
  plan: planRelease,
};

export function sumsMatch(expected: Record<string, string>, actual: Record<string, string>): boolean {
  const keys = Object.keys(expected);
  return keys.length === Object.keys(actual).length && keys.every((k) => actual[k] === expected[k]);
}

export function planRelease(params: AgentReleaseParams, facts: AgentReleaseFacts): Change[] {
  const { remote, target, artifact } = facts;
  if (params.state === 'absent') {
    if (!remote.home) return [];
    return [{
      id: `absent:${agentHome}`,
      summary: `remove ${agentHome} (releases ${remote.releases.join(', ') || 'none'}, current ${remote.current ?? '(none)'})`,
      diff: { subject: agentHome, before: remote.releases.map((r) => `${r}\n`).join(''), after: '' },
      steps: [{ kind: 'run', argv: ['rm', '-rf', '--', agentHome], timeoutMs: 120_000 }],
      // Uninstall: a reinstall pushes the release again.
      undo: null,
    }];
  }
  const changes: Change[] = [];
  const present = remote.releases.includes(target);
  if (artifact && artifact.version === target) {
    if (!sumsMatch(artifact.expectedSums, remote.targetSums)) changes.push(uploadChange(artifact, present, remote.targetSums, remote.home === true));
  } else if (!present) {
    throw new ReleaseError(`release ${target} is not on the host (it has ${remote.releases.filter((r) => versionPattern.test(r) && !isLeftover(r)).join(', ') || 'none'}) and the artifact is another version`);
  }

  const previousAfter = remote.current !== target ? remote.current : remote.previous;
  if (remote.current !== target) changes.push(switchChange(target, previousAfter, remote));

  const doomed = pruneList(remote.releases, target, previousAfter, params.keep_releases);
  if (doomed.length > 0) {
    changes.push({
      id: `prune:${releasesDir}`,
      summary: `remove ${doomed.length} old release(s) beyond the newest ${params.keep_releases}: ${doomed.join(', ')}`,
      diff: { subject: releasesDir, before: `${doomed.join('\n')}\n`, after: '' },
      steps: [{ kind: 'run', argv: ['rm', '-rf', '--', ...doomed.map(releaseDir)], timeoutMs: 120_000 }],
      // Deleted releases cannot come back from the host; the controller can push them again.
      undo: null,
    });
  }
  return changes;
}

const isLeftover = (name: string) => /\.(tmp|old)-[A-Za-z0-9]+$/.test(name);

/** What to delete: leftovers of interrupted uploads, then releases beyond the newest `keep` (target and previous always stay). */
export function pruneList(releasesNewestFirst: readonly string[], target: string, previous: string | null, keep: number): string[] {
  const releases = releasesNewestFirst.filter((r) => !isLeftover(r));
  const kept = new Set<string>([target, ...(previous ? [previous] : [])]);
  for (const r of releases) {
    if (kept.size >= keep) break;
    kept.add(r);
  }
  return [...releasesNewestFirst.filter(isLeftover), ...releases.filter((r) => !kept.has(r))];
}

function sumsText(sums: Record<string, string>): string {
  return Object.entries(sums)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([path, sum]) => `${sum}  ${path}\n`)
    .join('');
}

// Unpack beside the final name, verify every file against the manifest, then rename into place.
const uploadScript = `set -eu
releases=$1 version=$2 sums=$3
mkdir -p "$releases"
chmod 0755 "\${releases%/*}" "$releases"
tmp=$(mktemp -d "$releases/$version.tmp-XXXXXX")
old=
trap 'rm -rf "$tmp"' EXIT
base64 -d | tar -xzf - -C "$tmp" --no-same-owner --no-same-permissions
(cd "$tmp" && printf '%s' "$sums" | sha256sum -c --quiet --strict -)
chmod -R u=rwX,go=rX "$tmp"
dst=$releases/$version
if [ -e "$dst" ]; then old=$(mktemp -d "$releases/$version.old-XXXXXX"); rmdir "$old"; mv -T "$dst" "$old"; fi
mv -T "$tmp" "$dst"
if [ -n "$old" ]; then rm -rf "$old"; fi
`;

// Undo of a first push: the upload's `mkdir -p` created releases/ and the home itself; they go again once empty
// (whatever else lived under the home was created later in the same run, and its undo ran first).
const removeFirstReleaseScript = `rm -rf -- "$1"
for d in "$2" "$3"; do [ -d "$d" ] && rmdir --ignore-fail-on-non-empty -- "$d"; done
exit 0`;

function uploadChange(artifact: NonNullable<AgentReleaseFacts['artifact']>, present: boolean, remoteSums: Record<string, string>, homeExisted: boolean): Change {
  const dir = releaseDir(artifact.version);
  const tarball = artifact.tarballBase64;
  if (tarball === null) throw new ReleaseError(`release ${artifact.version} must be uploaded, but its tarball was not loaded`);
  const bytes = Math.ceil((tarball.length * 3) / 4);
  return {
    id: `release:${artifact.version}`,
    summary: present
      ? `replace ${dir}: its files differ from the manifest`
      : `upload agent ${artifact.version} (${Object.keys(artifact.expectedSums).length} files, ${bytes} bytes gzip) to ${dir}`,
    diff: { subject: dir, before: sumsText(remoteSums), after: sumsText(artifact.expectedSums) },
    steps: [
      {
        kind: 'run',
        argv: ['sh', '-c', uploadScript, 'epoch-release-upload', releasesDir, artifact.version, sumsText(artifact.expectedSums)],
        stdin: tarball,
        timeoutMs: 300_000,
      },
    ],
    // A fresh release can simply go; a damaged one we replaced is not worth restoring. On a host that had no
    // /opt/epoch-agent, the folders the upload created go too, so a rolled-back first install leaves nothing.
    undo: present
      ? []
      : homeExisted
        ? [{ kind: 'run', argv: ['rm', '-rf', '--', dir] }]
        : [{ kind: 'run', argv: ['sh', '-c', removeFirstReleaseScript, 'epoch-release-unpush', dir, releasesDir, agentHome] }],
  };
}

// Replace each link atomically: a temp link, then rename over the old one. Empty target = remove the link.
const switchScript = `set -eu
home=$1
setlink() {
  if [ -z "$2" ]; then rm -f "$home/$1"; return; fi
  ln -sfn "$2" "$home/.$1.tmp-$$"
  mv -T "$home/.$1.tmp-$$" "$home/$1"
}
setlink previous "$3"
setlink current "$2"
`;

/** After switching back, a running agent must run the release that is current again (no-op when it is stopped). */
const restartIfRunning: Step = tryRestartStep(unitName);

export function switchSteps(current: string | null, previous: string | null): Step[] {
  const link = (v: string | null) => (v === null ? '' : `releases/${v}`);
  return [{ kind: 'run', argv: ['sh', '-c', switchScript, 'epoch-release-switch', agentHome, link(current), link(previous)] }];
}

function switchChange(target: string, previousAfter: string | null, remote: RemoteReleaseState): Change {
  return {
    id: `link:${currentLink}`,
    summary: `switch ${currentLink} from ${remote.current ?? '(none)'} to ${target}`,
    diff: {
      subject: currentLink,
      before: `current -> ${remote.current ?? '(none)'}\nprevious -> ${remote.previous ?? '(none)'}\n`,
      after: `current -> ${target}\nprevious -> ${previousAfter ?? '(none)'}\n`,
    },
    steps: switchSteps(target, previousAfter),
    undo: [...switchSteps(remote.current, remote.previous), restartIfRunning],
  };
}

