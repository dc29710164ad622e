// Registers `verify` (see verify.ts).
import { registerModule } from '../registry';
import { verifyModule } from './verify';

registerModule(verifyModule);

export { VerifyFailedError, verifyModule, verifyParams } from './verify';
