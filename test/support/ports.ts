export { freePort } from '../../tools/free-port.js';
