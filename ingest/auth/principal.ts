// Who is calling, and what that allows (docs/contract.md#access-control). Roles grant actions;
// dealer scope limits which vehicles and prompts an action reaches; `location:read` is separate.
import type { Permission, Role } from '../store/ports.js';

export interface Principal {
  /** Stable identity for audit and rate limits: `key:<id>` or `oidc:<subject>`. */
  id: string;
  /** For people: shown in the console and recorded as `by` on acknowledgements. */
  name: string;
  role: Role;
  /** Dealers this principal may see; 'all' for fleet-wide roles (operator, lifecycle). */
  dealers: readonly string[] | 'all';
  permissions: ReadonlySet<Permission>;
  via: 'key' | 'oidc';
  /** When the credential itself ends (a token's exp, epoch ms): a console session never outlives it. */
  expiresAt?: number;
}

export const ACTIONS = [
  'vehicles:read',
  'vehicles:write',
  'telemetry:read',
  'service:write',
  'policy:write',
  'prompts:read',
  'prompts:act',
  'stats:read',
  'stream:read',
  'audit:read',
  'keys:manage',
  /** list dead lifecycle events and retry them (operator only) */
  'outbox:manage',
  'metrics:read',
  /** lifecycle campaigns: list, read, stats (docs/contract.md#campaigns) */
  'campaigns:read',
  /** create, pause, resume, cancel campaigns (lifecycle and operator; never a dealer's roles) */
  'campaigns:manage',
  'session',
] as const;
export type Action = (typeof ACTIONS)[number];

const ADVISOR: Action[] = [
  'vehicles:read',
  'telemetry:read',
  'service:write',
  'prompts:read',
  'prompts:act',
  'stats:read',
  'stream:read',
  'session',
];

/** docs/contract.md#roles */
const GRANTS: Record<Role, ReadonlySet<Action>> = {
  advisor: new Set(ADVISOR),
  // an advisor who also manages the dealer's keys and may set (location-free) sampling policies
  dealer_admin: new Set<Action>([...ADVISOR, 'keys:manage', 'policy:write']),
  operator: new Set(ACTIONS),
  // the CRM: fleet-wide reads of prompts, vehicles and segments; never position (seesLocation)
  // and its campaigns into the car (docs/domain.md#campaigns)
  lifecycle: new Set<Action>([
    'vehicles:read',
    'telemetry:read',
    'prompts:read',
    'stats:read',
    'stream:read',
    'campaigns:read',
    'campaigns:manage',
    'session',
  ]),
  metrics: new Set<Action>(['metrics:read']),
};

export const DEALER_SCOPED_ROLES: readonly Role[] = ['advisor', 'dealer_admin'];

export function can(p: Principal, action: Action): boolean {
  return GRANTS[p.role].has(action);
}

/** The dealers a query must be limited to; undefined = every dealer. */
export function dealerScope(p: Principal): readonly string[] | undefined {
  return p.dealers === 'all' ? undefined : p.dealers;
}

/** Whether this principal may see data of a vehicle or prompt that belongs to `dealerId`. */
export function seesDealer(p: Principal, dealerId: string | null | undefined): boolean {
  if (p.dealers === 'all') return true;
  return dealerId !== null && dealerId !== undefined && p.dealers.includes(dealerId);
}

/** Position signals need `location:read`; the lifecycle role never gets them (docs/domain.md#privacy-and-retention). */
export function seesLocation(p: Principal): boolean {
  return p.role !== 'lifecycle' && p.role !== 'metrics' && p.permissions.has('location:read');
}

/** What the console and GET /api/v1/session show of a principal. */
export function describePrincipal(p: Principal): {
  id: string;
  name: string;
  role: Role;
  dealers: string[] | 'all';
  permissions: Permission[];
} {
  return { id: p.id, name: p.name, role: p.role, dealers: p.dealers === 'all' ? 'all' : [...p.dealers], permissions: [...p.permissions] };
}
