// The JSON the agent's health endpoint (GET /healthz on the health listener) returns. Types only.

export interface LearnedPassthroughEntry {
  /** `sni:<name>` or `ip:<addr>:<port>`. */
  destination: string;
  reason: string;
  learnedAt: string;
  expiresAt: string;
}

export interface HealthPayload {
  ready: boolean;
  version: string;
  pid: number;
  uptimeSeconds: number;
  connections: { active: number; total: number };
  /** Error counters by kind, e.g. `client_hello_invalid`, `upstream_verify_failed`, `loop_refused`. */
  errors: Record<string, number>;
  learnedPassthrough: LearnedPassthroughEntry[];
  /** SHA-256 fingerprint (hex, colon-free, lowercase) of the CA the agent signs with. */
  caFingerprintSha256: string;
}
