import { HoistError } from "../errors.ts";

export const INCIDENT_STATUSES = ["open", "acknowledged", "resolved"] as const;
export type IncidentStatus = (typeof INCIDENT_STATUSES)[number];

/**
 * The one table of legal incident moves (API.md § Incidents). `open → resolved`
 * is allowed too: a green CI run resolves an incident nobody acknowledged yet,
 * and people may close one without acknowledging it first.
 */
export const TRANSITIONS: Readonly<Record<IncidentStatus, readonly IncidentStatus[]>> = {
  open: ["acknowledged", "resolved"],
  acknowledged: ["resolved"],
  resolved: ["open"],
};

export const canMove = (from: IncidentStatus, to: IncidentStatus) => TRANSITIONS[from].includes(to);

/** Throws the 409 naming the allowed moves when `from → to` is not one. */
export function assertMove(from: IncidentStatus, to: IncidentStatus): void {
  if (canMove(from, to)) return;
  const allowed = TRANSITIONS[from];
  throw new HoistError(
    409,
    "illegal_transition",
    `An incident cannot move from ${from} to ${to}; from ${from} it may move to: ${allowed.join(", ")}`,
  );
}
