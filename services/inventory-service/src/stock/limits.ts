// Bounds on what a request may ask for. They keep every stock figure well
// inside PostgreSQL's int4 so no sum can overflow, and keep one request's
// work (and its transaction's locks) small.

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
/** Highest price in minor units (ten trillion major units). */
export const MAX_PRICE_MINOR = 10n ** 15n;
/** Longest free texts, in characters. */
export const MAX_NAME_LENGTH = 200;
export const MAX_DESCRIPTION_LENGTH = 2000;
export const MAX_NOTE_LENGTH = 500;
export const MAX_ACTOR_LENGTH = 100;
