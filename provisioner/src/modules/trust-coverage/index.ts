// Registers the trust-coverage module.
import { registerModule } from '../registry';
import { trustCoverageModule } from './trust-coverage';

registerModule(trustCoverageModule);
