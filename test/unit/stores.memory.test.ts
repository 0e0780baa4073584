// The in-memory stores against the shared port suites.
import { createMemoryStores } from '../../ingest/stores.js';
import { authStoreSuite } from '../ports/auth-store.suite.js';
import { campaignStoreSuite } from '../ports/campaign-store.suite.js';
import { outboxSuite } from '../ports/outbox.suite.js';
import { promptStoreSuite } from '../ports/prompt-store.suite.js';
import { storesSuite } from '../ports/stores.suite.js';
import { vehicleStoreSuite } from '../ports/vehicle-store.suite.js';

promptStoreSuite('memory', createMemoryStores);
vehicleStoreSuite('memory', createMemoryStores);
outboxSuite('memory', createMemoryStores);
storesSuite('memory', createMemoryStores);
authStoreSuite('memory', createMemoryStores);
campaignStoreSuite('memory', createMemoryStores);
