#!/usr/bin/env node
// The one `odopulse` bin; the TypeScript sources are compiled to dist/ by `npm run build`.
import '../dist/cli.js';
