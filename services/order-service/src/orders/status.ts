/**
 * The order state machine.
 *
 *   pending ──▶ confirmed ──▶ fulfilled
 *      │            │
 *      ├──▶ rejected └──▶ cancelled
 *      └──▶ cancelled
 *
 * Every transition is applied in SQL guarded by the states it may start from
 * (`UPDATE ... WHERE id = $1 AND status = ANY($from)`), so a retry or a race
 * can never move an order twice.
 */
export const ORDER_STATUSES = ["pending", "confirmed", "rejected", "cancelled", "fulfilled"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** A transition: the states it may start from and the state it ends in. */
export interface Transition {
  readonly from: readonly OrderStatus[];
  readonly to: OrderStatus;
}

export const CONFIRM: Transition = { from: ["pending"], to: "confirmed" };
export const REJECT: Transition = { from: ["pending"], to: "rejected" };
export const CANCEL: Transition = { from: ["pending", "confirmed"], to: "cancelled" };
export const FULFIL: Transition = { from: ["confirmed"], to: "fulfilled" };
