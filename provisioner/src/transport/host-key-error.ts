// A host key that does not match known_hosts. Always fatal for that host: no flag accepts a changed key.
import { UnreachableError } from '../core/errors';

export class HostKeyError extends UnreachableError {
  constructor(
    message: string,
    host: string,
    readonly reason: 'changed' | 'unknown' | 'revoked',
  ) {
    super(message, host);
  }
}

export const isHostKeyError = (e: unknown): e is HostKeyError => e instanceof HostKeyError;
