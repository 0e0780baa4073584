// Rule states as JSON text (RuleStateJson, rules/types.ts): from and to the object the engine runs on.
import type { RuleStateJson, VehicleRuleState } from './types.js';

export function toStateJson(state: VehicleRuleState): RuleStateJson {
  return { vin: state.vin, journalId: state.journalId, json: JSON.stringify(state) };
}

export function parseState(s: RuleStateJson): VehicleRuleState {
  return JSON.parse(s.json) as VehicleRuleState;
}
