/**
 * A development OAuth 2.0 issuer: the stand-in for the real identity
 * provider in `make dev` and in tests. Its state is a folder:
 *
 *   signing-keys.json  the private ES256 keys (a JWK Set), current key first
 *   jwks.json          their public halves, what verifiers trust
 *
 * Everything that signs (the HTTP issuer, mintToken, the token CLI) reads
 * the folder when it signs, so they all sign with the same current key and
 * a rotation made by one is seen by the others. Not for production: the
 * keys sit unencrypted on disk and the clients are configured in code.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import { link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JSONWebKeySet, type JWK } from "jose";

export const DEV_ISSUER_PORT = 9400;
export const DEV_ISSUER_URL = `http://127.0.0.1:${DEV_ISSUER_PORT}`;

const ALG = "ES256";
const KEYS_FILE = "signing-keys.json";
const JWKS_FILE = "jwks.json";

/** The public JWK Set file the issuer keeps in `dir`, for verifiers configured with a file. */
export function jwksFilePath(dir: string): string {
  return path.join(dir, JWKS_FILE);
}

/** The private keys, current first; made (one new key) when the folder has none. */
async function signingKeys(dir: string): Promise<JWK[]> {
  const file = path.join(dir, KEYS_FILE);
  try {
    return (JSON.parse(await readFile(file, "utf8")) as { keys: JWK[] }).keys;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  // Default modes: the folder may be made inside .data/, which other
  // processes (PostgreSQL as its own user) must traverse; the key file
  // itself is private.
  await mkdir(dir, { recursive: true });
  const keys = [await newKey()];
  const temp = await writeTemp(file, { keys });
  try {
    // link() fails when the file exists, so of two first uses at once one
    // key wins and both sign with it.
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return signingKeys(dir);
  } finally {
    await rm(temp, { force: true });
  }
  await writePublic(dir, keys);
  return keys;
}

async function newKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: ALG, use: "sig" };
}

/** Private keys are for this user only (the default mode); the public set is for anyone. */
async function writeTemp(file: string, content: unknown, mode = 0o600): Promise<string> {
  const temp = `${file}.${randomUUID()}.tmp`;
  await writeFile(temp, `${JSON.stringify(content, null, 2)}\n`, { mode });
  return temp;
}

/** Replaces a file whole, so a reader sees the old content or the new, never part. */
async function replaceFile(file: string, content: unknown, mode?: number): Promise<void> {
  await rename(await writeTemp(file, content, mode), file);
}

async function writePublic(dir: string, keys: JWK[]): Promise<void> {
  await replaceFile(jwksFilePath(dir), publicSet(keys), 0o644);
}

function publicSet(keys: JWK[]): JSONWebKeySet {
  return { keys: keys.map(({ d: _private, ...publicKey }) => publicKey) };
}

/**
 * Makes a new signing key current. The previous keys stay published, so
 * tokens they signed keep verifying until {@link removeSigningKey}. Answers
 * the new key id.
 */
export async function rotateSigningKey(dir: string): Promise<string> {
  const keys = [await newKey(), ...(await signingKeys(dir))];
  await replaceFile(path.join(dir, KEYS_FILE), { keys });
  await writePublic(dir, keys);
  return keys[0]!.kid!;
}

/** Retires a key that is no longer current: tokens it signed stop verifying once verifiers reload. */
export async function removeSigningKey(dir: string, kid: string): Promise<void> {
  const keys = await signingKeys(dir);
  if (keys[0]!.kid === kid) throw new Error(`key ${kid} is the current signing key; rotate first`);
  const kept = keys.filter((key) => key.kid !== kid);
  await replaceFile(path.join(dir, KEYS_FILE), { keys: kept });
  await writePublic(dir, kept);
}

/** The issuer's public keys, as its JWKS endpoint serves them. */
export async function publicJwks(dir: string): Promise<JSONWebKeySet> {
  return publicSet(await signingKeys(dir));
}

export interface MintTokenOptions {
  /** The issuer's folder (see the module comment). */
  dir: string;
  issuer?: string;
  subject: string;
  scopes?: readonly string[];
  audience: string;
  ttlSeconds?: number;
  /** Recorded as `client_id`: the client the token was issued to. */
  clientId?: string;
  /** When the token is issued and becomes valid; tests move it to make expired and future tokens. */
  now?: Date;
}

/**
 * Signs an access token (RFC 9068 shape) with the current development key,
 * without a server: for tests, `make token` and the issuer's own token
 * endpoint.
 */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const { dir, issuer = DEV_ISSUER_URL, subject, scopes = [], audience, ttlSeconds = 3600, clientId, now = new Date() } = options;
  const jwk = (await signingKeys(dir))[0]!;
  const issuedAt = Math.floor(now.getTime() / 1000);
  return new SignJWT({ ...(scopes.length > 0 ? { scope: scopes.join(" ") } : {}), ...(clientId === undefined ? {} : { client_id: clientId }) })
    .setProtectedHeader({ alg: ALG, kid: jwk.kid!, typ: "at+jwt" })
    .setIssuer(issuer)
    .setSubject(subject)
    .setAudience(audience)
    .setIssuedAt(issuedAt)
    .setNotBefore(issuedAt)
    .setExpirationTime(issuedAt + ttlSeconds)
    .setJti(randomUUID())
    .sign(await importJWK(jwk, ALG));
}

/** A client the issuer grants tokens to by the client-credentials grant. */
export interface DevClient {
  clientId: string;
  clientSecret: string;
  /** The scopes it may ask for; asking for none grants all of them. */
  scopes: readonly string[];
  /** The audiences it may ask for (`audience` parameter); asking for none gets the first. */
  audiences: readonly string[];
}

export interface DevIssuerOptions {
  dir: string;
  /** 0 picks a free port. */
  port?: number;
  /** The `iss` of its tokens; by default its own URL. */
  issuer?: string;
  clients: readonly DevClient[];
  tokenTtlSeconds?: number;
}

export interface DevIssuer {
  issuer: string;
  jwksUrl: string;
  tokenUrl: string;
  /** See {@link rotateSigningKey}. */
  rotateKey(): Promise<string>;
  /** See {@link removeSigningKey}. */
  removeKey(kid: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Serves the development issuer on 127.0.0.1 over plain HTTP: OpenID
 * discovery, the JWKS, and a token endpoint for the client-credentials
 * grant (client_secret_basic or client_secret_post). Makes the signing key
 * on first use.
 */
export async function startDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  const { dir, port = DEV_ISSUER_PORT, clients, tokenTtlSeconds = 3600 } = options;
  await signingKeys(dir);
  let urls = { issuer: "", jwksUrl: "", tokenUrl: "" };
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    "GET /.well-known/openid-configuration": async (_req, res) =>
      send(res, 200, {
        issuer: urls.issuer,
        jwks_uri: urls.jwksUrl,
        token_endpoint: urls.tokenUrl,
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        id_token_signing_alg_values_supported: [ALG],
      }),
    "GET /.well-known/jwks.json": async (_req, res) => send(res, 200, await publicJwks(dir)),
    "POST /oauth/token": async (req, res) => {
      const answer = await grant(await readForm(req), req.headers.authorization, clients);
      if ("error" in answer) {
        send(res, answer.status, { error: answer.error, error_description: answer.description }, answer.status === 401 ? { "www-authenticate": 'Basic realm="dev-issuer"' } : {});
        return;
      }
      const { client, scopes, audience } = answer;
      const token = await mintToken({ dir, issuer: urls.issuer, subject: client.clientId, clientId: client.clientId, scopes, audience, ttlSeconds: tokenTtlSeconds });
      send(res, 200, { access_token: token, token_type: "Bearer", expires_in: tokenTtlSeconds, scope: scopes.join(" ") });
    },
  };
  const server = createServer((req, res) => {
    const route = routes[`${req.method} ${new URL(req.url ?? "/", "http://x").pathname}`];
    if (!route) return send(res, 404, { error: "not_found" });
    route(req, res).catch((error: unknown) => send(res, 500, { error: "server_error", error_description: String(error) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  urls = { issuer: options.issuer ?? base, jwksUrl: `${base}/.well-known/jwks.json`, tokenUrl: `${base}/oauth/token` };
  return {
    ...urls,
    rotateKey: () => rotateSigningKey(dir),
    removeKey: (kid) => removeSigningKey(dir, kid),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

type Grant =
  | { client: DevClient; scopes: readonly string[]; audience: string }
  | { status: number; error: string; description: string };

/** Decides a token request (RFC 6749 §4.4), or the error answer (§5.2). */
async function grant(form: URLSearchParams, authorization: string | undefined, clients: readonly DevClient[]): Promise<Grant> {
  const refuse = (status: number, error: string, description: string) => ({ status, error, description });
  const basic = basicCredentials(authorization);
  // A client_id alone in the form is not a second method: some clients send it along with Basic.
  const posted = form.has("client_secret") ? { id: form.get("client_id") ?? "", secret: form.get("client_secret")! } : undefined;
  if (basic && posted) return refuse(400, "invalid_request", "use one client authentication method, not two");
  const credentials = basic ?? posted;
  const client = clients.find((c) => c.clientId === credentials?.id);
  if (!credentials || !client || !sameSecret(client.clientSecret, credentials.secret)) {
    return refuse(401, "invalid_client", "unknown client or wrong secret");
  }
  const grantType = form.get("grant_type");
  if (grantType === null) return refuse(400, "invalid_request", "grant_type is required");
  if (grantType !== "client_credentials") return refuse(400, "unsupported_grant_type", `grant type ${grantType} is not supported`);
  const requested = (form.get("scope") ?? "").split(" ").filter((s) => s !== "");
  const refused = requested.filter((s) => !client.scopes.includes(s));
  if (refused.length > 0) return refuse(400, "invalid_scope", `client ${client.clientId} may not have ${refused.join(" ")}`);
  const audience = form.get("audience") ?? client.audiences[0];
  if (audience === undefined || !client.audiences.includes(audience)) {
    return refuse(400, "invalid_target", `client ${client.clientId} may not have tokens for ${audience ?? "any audience"}`);
  }
  return { client, scopes: requested.length > 0 ? requested : client.scopes, audience };
}

/** client_secret_basic (RFC 6749 §2.3.1): both halves are form-encoded before base64. */
function basicCredentials(authorization: string | undefined): { id: string; secret: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(authorization ?? "");
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon === -1) return undefined;
  const formDecode = (s: string) => new URLSearchParams(`v=${s}`).get("v") ?? "";
  return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
}

function sameSecret(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

const MAX_FORM_BYTES = 16 * 1024;

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = "";
  for await (const chunk of req) {
    body += chunk;
    if (body.length > MAX_FORM_BYTES) throw new Error("token request body too large");
  }
  return new URLSearchParams(body);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // Token answers must not be cached (RFC 6749 §5.1); nothing here needs to be.
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}
