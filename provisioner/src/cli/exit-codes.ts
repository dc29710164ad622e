// Documented exit codes (README "Exit codes"). Pipelines branch on these.
export const exitCodes = {
  /** Every host ok or changed. */
  ok: 0,
  /** A bug or an unexpected error in epoch-provision itself. */
  internal: 1,
  /** Bad inventory, playbook, parameters or flags; no host was touched. */
  config: 2,
  /** At least one host failed a task. */
  hostsFailed: 3,
  /** At least one host was unreachable (and none failed). */
  hostsUnreachable: 4,
  /** A staged rollout halted: a batch breached its failure budget; later batches were not touched. */
  rolloutHalted: 5,
  /** Interrupted (SIGINT/SIGTERM); hosts were left to their commit-confirmed auto-revert. */
  interrupted: 130,
} as const;
