// The PostgreSQL launcher lives in tools/ (the cluster benchmark uses it too; benchmarks do not import test/).
export * from '../../tools/postgres-local.js';
