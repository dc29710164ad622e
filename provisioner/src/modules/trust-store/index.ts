// Registers the trust-store module.
import { registerModule } from '../registry';
import { trustStoreModule } from './trust-store';

registerModule(trustStoreModule);
