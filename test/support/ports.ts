export { freePort } from '../../ingest/net/free-port.js';
