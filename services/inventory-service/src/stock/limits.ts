import { EVENT_PAGE_MAX } from "@ecommerce/events/outbox.ts";

// Bounds on what a request may ask for. They keep every stock figure well
// inside PostgreSQL's int4 so no sum can overflow, and keep one request's
// work (and its transaction's locks) small. The transport bounds (message
// sizes, streams, timeouts) are settings: see Limits in src/config.ts,
// which includes these too.

/** Most lines in one CheckStock or ReserveStock request. */
export const MAX_LINES = 100;
/** Most orders in one ReserveOrders request, and most lines in all of them. */
export const MAX_RESERVE_BATCH = 500;
export const MAX_RESERVE_BATCH_LINES = 5000;
/** Most units of one product in one line. */
export const MAX_LINE_QUANTITY = 1_000_000;
/** Most units a product can have on hand. */
export const MAX_ON_HAND = 1_000_000_000;
/** Most orders in one ConfirmReservations request. */
export const MAX_CONFIRM_BATCH = 1000;
/** Most products on one ListProducts page, and the default. */
export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;
/** Most events on one ListEvents page (the outbox listing's own bound), and the default. */
export const MAX_EVENT_PAGE_SIZE = EVENT_PAGE_MAX;
export const DEFAULT_EVENT_PAGE_SIZE = 100;
/** Longest ListEvents page token: one is the base64url of two integers, well under it. */
export const MAX_EVENT_PAGE_TOKEN_LENGTH = 64;
/** Highest low-stock threshold: more than a product can hold means nothing. */
export const MAX_LOW_STOCK_THRESHOLD = MAX_ON_HAND;
/** Highest price in minor units (ten trillion major units). */
export const MAX_PRICE_MINOR = 10n ** 15n;
/** Longest free texts, in characters. */
export const MAX_NAME_LENGTH = 200;
export const MAX_DESCRIPTION_LENGTH = 2000;
/** Longest note of a stock adjustment, and reason of a release. */
export const MAX_NOTE_LENGTH = 500;
export const MAX_ACTOR_LENGTH = 100;
/** Length of every id (order_id, product_id): a UUID in its text form. */
export const UUID_LENGTH = 36;
/** Longest SKU. */
export const MAX_SKU_LENGTH = 64;
/** Length of a currency code (ISO 4217). */
export const CURRENCY_LENGTH = 3;
/** Longest ListProducts page token: one carries a SKU, which needs about 100. */
export const MAX_PAGE_TOKEN_LENGTH = 256;
/**
 * Most field violations one refusal lists; the rest are counted. A request
 * with many bad fields gets a short answer, and the answer's trailers stay
 * far below the header size bound.
 */
export const MAX_VIOLATIONS = 20;
/** Most characters of a client's value an error message quotes. */
export const MAX_QUOTED_LENGTH = 64;
