// The Node flags ingest is meant to run with (the Dockerfile's ENTRYPOINT, the benchmark's ingest
// child; README "Configuration"). Semi-spaces of up to 64 MB: a decoded batch lives about a second
// (until both journal loops are done with it), and with V8's default young generation most batches
// were copied twice and promoted before they died; measured: ingest CPU per reading 16.4 → 14.4 µs (medians of three)
// (bench/README.md#node-flags). V8 grows the young generation only under such an allocation rate.
export const INGEST_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
