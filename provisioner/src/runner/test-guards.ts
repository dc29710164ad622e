// Type guards the runner's tests use.
import { DidNotConvergeError } from '../core/errors';

export const isDidNotConverge = (e: unknown): e is DidNotConvergeError => e instanceof DidNotConvergeError;
