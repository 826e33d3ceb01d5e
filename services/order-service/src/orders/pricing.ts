import type { ReservedLine } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { PricedOrder } from "./repository.ts";

/** The order priced, or why it cannot be. */
export type PricingResult = ({ ok: true } & PricedOrder) | { ok: false; reason: string };

/**
 * Prices an order's lines at the unit prices inventory reserved them at.
 * An order is settled in one currency, and every amount must stay an exact
 * JSON number (at most Number.MAX_SAFE_INTEGER minor units).
 */
export function priceOrder(
  items: readonly { product_id: string; quantity: number }[],
  reserved: readonly ReservedLine[],
): PricingResult {
  const byProduct = new Map(reserved.map((line) => [line.productId.toLowerCase(), line]));
  const currencies = new Set(reserved.map((line) => line.currency));
  if (currencies.size > 1) {
    return {
      ok: false,
      reason: `its products are priced in different currencies (${[...currencies].sort().join(", ")}); place one order per currency`,
    };
  }
  let total = 0n;
  const priced: PricedOrder["items"] = [];
  for (const item of items) {
    const line = byProduct.get(item.product_id);
    if (!line || line.quantity !== item.quantity) {
      return { ok: false, reason: `inventory reserved different lines than ordered (product ${item.product_id})` };
    }
    total += line.unitPriceMinor * BigInt(item.quantity);
    priced.push({ product_id: item.product_id, unit_price_minor: Number(line.unitPriceMinor) });
  }
  const [currency] = currencies;
  if (currency === undefined) return { ok: false, reason: "inventory returned no prices" };
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: "its total is too large" };
  return { ok: true, items: priced, total_minor: Number(total), currency };
}
