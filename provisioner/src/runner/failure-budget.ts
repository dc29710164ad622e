// When a staged rollout must halt. Two budgets, both with Ansible's "must be EXCEEDED" semantics:
//  - max_fail_percentage, per batch (Ansible's own): failed+unreachable in the batch / batch size.
//  - epoch_max_total_fail_percentage, cumulative across batches: failed+unreachable so far / all hosts in the play.
//    Per-batch accounting alone let failures pile up batch after batch (gitlab.com gl-infra/delivery#951).
// Without max_fail_percentage a batch in which every host failed halts the play, as in Ansible.

export interface FailureBudget {
  /** Per batch, 0-100. Undefined: only a fully failed batch halts. */
  maxFailPercentage?: number;
  /** Across batches, 0-100, relative to all hosts of the play. Undefined: no cumulative limit. */
  maxTotalFailPercentage?: number;
}

export interface BatchTally {
  batchSize: number;
  batchFailed: number;
  totalHosts: number;
  /** Failed or unreachable hosts in this and every earlier batch. */
  cumulativeFailed: number;
}

/** The reason to halt, or null to go on. */
export function budgetBreach(budget: FailureBudget, t: BatchTally): string | null {
  const pct = (n: number, of: number) => (of === 0 ? 0 : (n / of) * 100);
  const fmt = (n: number) => `${Math.round(n * 100) / 100}%`;
  const batchPct = pct(t.batchFailed, t.batchSize);
  if (budget.maxFailPercentage !== undefined) {
    if (batchPct > budget.maxFailPercentage) {
      return `${t.batchFailed} of ${t.batchSize} host(s) in the batch failed (${fmt(batchPct)}), exceeding max_fail_percentage ${budget.maxFailPercentage}%`;
    }
  } else if (t.batchSize > 0 && t.batchFailed === t.batchSize) {
    return `every host in the batch failed (${t.batchFailed} of ${t.batchSize})`;
  }
  if (budget.maxTotalFailPercentage !== undefined) {
    const totalPct = pct(t.cumulativeFailed, t.totalHosts);
    if (totalPct > budget.maxTotalFailPercentage) {
      return `${t.cumulativeFailed} of ${t.totalHosts} host(s) failed so far (${fmt(totalPct)}), exceeding the cumulative budget epoch_max_total_fail_percentage ${budget.maxTotalFailPercentage}%`;
    }
  }
  return null;
}
