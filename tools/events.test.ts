import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { EventType } from "@ecommerce/events/catalogue.ts";
import { encodeEvent } from "@ecommerce/events/cloudevents.ts";
import { connectNats, jetStreamManagerOf, jetStreamOf, type NatsConnection } from "@ecommerce/events/nats.ts";
import { ensureStreams } from "@ecommerce/events/streams.ts";
import { sampleData } from "../packages/events/test/fixtures.ts";
import { money, tailPlan } from "./events.ts";
import { natsServerAvailable, natsSuiteName, startOwnNats, type OwnNats } from "./nats.ts";
import { freePort, repoRoot } from "./postgres.ts";

/** `make events`, run as a process the way a developer runs it. */

interface Tail {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

function tail(natsUrl: string, ...args: string[]): Tail {
  const child = spawn(process.execPath, [path.join(repoRoot, "tools", "events.ts"), ...args], {
    env: { ...process.env, NATS_URL: natsUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
  };
}

async function until(check: () => boolean, what: string, t: Tail, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nstdout:\n${t.stdout()}\nstderr:\n${t.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("make events", () => {
  test("with no broker, says so, tells where the events can be read instead, and exits non-zero", async () => {
    const t = tail(`nats://127.0.0.1:${await freePort()}`);
    const started = Date.now();
    const code = await t.exited;
    expect(Date.now() - started).toBeLessThan(8000);
    expect(code).toBe(1);
    expect(t.stderr()).toContain("No NATS broker answers at nats://127.0.0.1:");
    expect(t.stderr()).toContain("GET /api/v1/events");
    expect(t.stderr()).toContain("ListEvents");
    expect(t.stdout()).toBe("");
  });

  test("an unknown type prefix is refused with the list of types", async () => {
    const t = tail("nats://127.0.0.1:1", "--type", "payments.");
    expect(await t.exited).toBe(2);
    expect(t.stderr()).toContain("orders.v1.order.placed");
  });

  test("filters by subject on the server when one subject covers the prefix, by type otherwise", () => {
    expect(tailPlan("orders.v1.order")).toMatchObject({ streams: ["ORDERS"], filter: "orders.v1.order.>" });
    expect(tailPlan("inventory.v1.stock.low")).toMatchObject({ streams: ["INVENTORY"], filter: "inventory.v1.stock.low" });
    expect(tailPlan("inventory")).toMatchObject({ streams: ["INVENTORY"], filter: undefined });
    expect(tailPlan("inventory.v1.stock.re")).toMatchObject({ streams: ["INVENTORY"], filter: undefined });
    expect(tailPlan("inventory.v1.stock.re")!.matches("inventory.v1.stock.released")).toBe(true);
    expect(tailPlan(undefined)).toMatchObject({ streams: ["ORDERS", "INVENTORY"], filter: undefined });
    expect(tailPlan("nothing")).toBeUndefined();
  });

  test("writes amounts in the currency's decimals", () => {
    expect(money(159998n, "USD")).toBe("1599.98 USD");
    expect(money(5n, "EUR")).toBe("0.05 EUR");
    expect(money(1500n, "JPY")).toBe("1500 JPY");
    expect(money(-1234n, "USD")).toBe("-12.34 USD");
  });
});

describe.skipIf(!natsServerAvailable())(natsSuiteName("make events with a broker"), () => {
  let nats: OwnNats;
  let nc: NatsConnection;
  const tails: Tail[] = [];

  beforeAll(async () => {
    nats = await startOwnNats();
    nc = await connectNats({ url: nats.url, name: "make events test" });
  });
  afterAll(async () => {
    for (const t of tails) t.child.kill("SIGKILL");
    await nc?.close();
    await nats?.close();
  });

  async function publish(type: EventType, subject = randomUUID()) {
    const e = encodeEvent(
      { id: randomUUID(), type, subject, time: new Date(), data: sampleData(type, subject, 2) },
      { source: type.startsWith("orders") ? "/order-service" : "/inventory-service", format: "protobuf" },
    );
    await jetStreamOf(nc).publish(e.subject, e.payload, { msgID: e.msgID, headers: e.headers });
    return subject;
  }

  test("waits for the streams, then prints one line per new event with what it says; Ctrl-C ends it", async () => {
    const t = tail(nats.url);
    tails.push(t);
    await until(() => /waiting for stream ORDERS/.test(t.stderr()) && /waiting for stream INVENTORY/.test(t.stderr()), "the wait for the streams", t);
    await ensureStreams(await jetStreamManagerOf(nc));
    await until(() => t.stderr().includes("# ready"), "the tail to be ready", t);
    const order = await publish("orders.v1.order.confirmed");
    const product = await publish("inventory.v1.stock.low");
    await publish("inventory.v1.stock.reserved", order);
    await until(() => t.stdout().trim().split("\n").length >= 3, "three lines", t);
    const lines = t.stdout().trim().split("\n");
    const confirmed = lines.find((l) => l.includes("orders.v1.order.confirmed"))!;
    expect(confirmed).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}  orders\.v1\.order\.confirmed/);
    expect(confirmed).toContain(order);
    expect(confirmed).toContain("user=user-2 status=confirmed lines=2 units=4 total=2529.96 USD");
    const low = lines.find((l) => l.includes("inventory.v1.stock.low"))!;
    expect(low).toContain(product);
    expect(low).toContain("available=4 < threshold=5");
    const reserved = lines.find((l) => l.includes("inventory.v1.stock.reserved"))!;
    expect(reserved).toContain(`${order}  lines=1 […000000000001×2] units=2`);
    t.child.kill("SIGINT");
    expect(await t.exited).toBe(0);
  });

  test("--all --type shows the events of those types the streams already hold, and only those", async () => {
    await ensureStreams(await jetStreamManagerOf(nc));
    const earlier = await publish("inventory.v1.stock.adjusted");
    await publish("inventory.v1.stock.committed");
    const t = tail(nats.url, "--all", "--type", "inventory.v1.stock.adjusted");
    tails.push(t);
    await until(() => t.stdout().includes(earlier), "the event published before the tail started", t);
    const later = await publish("inventory.v1.stock.adjusted");
    await publish("orders.v1.order.placed");
    await until(() => t.stdout().includes(later), "the new event", t);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const lines = t.stdout().trim().split("\n");
    expect(lines.every((l) => l.includes("inventory.v1.stock.adjusted"))).toBe(true);
    expect(lines.find((l) => l.includes(later))).toContain("restock on_hand+10 → on_hand=10 reserved=6 available=4");
    t.child.kill("SIGTERM");
    expect(await t.exited).toBe(0);
  });
});
