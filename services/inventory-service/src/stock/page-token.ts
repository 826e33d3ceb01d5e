// ListProducts pages by SKU (keyset). The token carries the last SKU of the
// previous page; it is opaque to callers so its shape can change.

/** The token for the page after the product with this SKU. */
export function encodePageToken(lastSku: string): string {
  return Buffer.from(JSON.stringify({ after: lastSku })).toString("base64url");
}

/** The SKU a page token continues after, or undefined when the token is not one of ours. */
export function decodePageToken(token: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (typeof parsed === "object" && parsed !== null && "after" in parsed && typeof parsed.after === "string" && !parsed.after.includes("\u0000")) {
      return parsed.after;
    }
  } catch {
    // Not JSON: fall through to "not a token".
  }
  return undefined;
}
