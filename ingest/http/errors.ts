// One error shape for every route: {error, message, details}. Client mistakes get a 4xx with
// what was wrong; only our own failures become a 500 (logged, without internals in the body).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { TelemetryUnavailableError } from '../store/telemetry-errors.js';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const notFound = (what: string, id: string): HttpError => new HttpError(404, 'not_found', `${what} ${id} not found`, { [what]: id });
export const conflict = (message: string, details: unknown = null): HttpError => new HttpError(409, 'conflict', message, details);
export const badRequest = (message: string, details: unknown = null): HttpError => new HttpError(400, 'bad_request', message, details);

export interface ErrorBody {
  error: string;
  message: string;
  details: unknown;
}

function send(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof HttpError) return send(reply, err.statusCode, { error: err.code, message: err.message, details: err.details });
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = (err as FastifyError).validationContext ?? 'request';
      const issues = err.validation.map((v) => ({ path: v.instancePath, code: v.keyword, message: v.message, ...v.params }));
      return send(reply, 400, {
        error: 'validation',
        message: `invalid ${where}: ${err.validation.map((v) => `${v.instancePath} ${v.message}`).join('; ')}`,
        details: { in: where, issues },
      });
    }
    if (err.name === 'InvalidCursorError') return send(reply, 400, { error: 'invalid_cursor', message: err.message, details: null });
    // cluster mode: the owner of the vehicle's partition did not answer in time (a hand-over); try again
    if (err.name === 'ServiceRecordUnavailableError')
      return send(reply, 503, { error: 'owner_unavailable', message: err.message, details: null });
    // InfluxDB not connected or not answering: the caller may try again, nothing is wrong with the request
    if (err instanceof TelemetryUnavailableError) {
      req.log.warn({ err: err.message }, 'telemetry unavailable');
      return send(reply, 503, { error: 'telemetry_unavailable', message: err.message, details: null });
    }
    if (isResponseSerializationError(err)) {
      req.log.error({ err, issues: err.cause.issues }, 'response does not match its schema');
      return send(reply, 500, { error: 'internal', message: 'internal error', details: null });
    }
    const status = (err as FastifyError).statusCode;
    // fastify's own 4xx (bad JSON, empty body, body too large, unsupported media type...).
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const code = (err as FastifyError).code ?? 'bad_request';
      return send(reply, status, { error: code, message: err.message, details: null });
    }
    req.log.error({ err }, 'request failed');
    return send(reply, status && status >= 500 ? status : 500, { error: 'internal', message: 'internal error', details: null });
  });

  app.setNotFoundHandler((req, reply) => {
    send(reply, 404, { error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}`, details: null });
  });
}
