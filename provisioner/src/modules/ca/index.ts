// Registers the ca module.
import { registerModule } from '../registry';
import { caModule } from './ca';

registerModule(caModule);
