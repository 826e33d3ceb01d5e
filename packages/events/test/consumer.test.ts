import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { natsServerAvailable, natsSuiteName, startOwnNats, type OwnNats } from "../../../tools/nats.ts";
import type { EventType } from "../src/catalogue.ts";
import { encodeEvent } from "../src/cloudevents.ts";
import { consume, createInbox, type EventConsumer, type ReceivedEvent } from "../src/consumer.ts";
import { connectNats, jetStreamManagerOf, jetStreamOf, type NatsConnection } from "../src/nats.ts";
import { ensureStreams } from "../src/streams.ts";
import { captureLogger, eventually, sampleData, sleep, testPool } from "./fixtures.ts";
import { createTestDatabase } from "../../../tools/testing.ts";

/**
 * The idempotent consumer against a real NATS JetStream and PostgreSQL:
 * whatever fails, and wherever, each event's effects are applied once.
 * Effects are rows of a table counted per event id, written by the handler
 * in the inbox transaction.
 */
describe.skipIf(!natsServerAvailable())(natsSuiteName("consumer"), () => {
  let nats: OwnNats;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let url: string;
  let pool: pg.Pool;
  const consumers: EventConsumer[] = [];

  beforeAll(async () => {
    nats = await startOwnNats();
    nc = await connectNats({ url: nats.url, name: "consumer test" });
    js = jetStreamOf(nc);
    jsm = await jetStreamManagerOf(nc);
    await ensureStreams(jsm);
    url = await createTestDatabase("consumer");
    pool = testPool(url);
    await createInbox(pool);
    await createInbox(pool); // idempotent
    await pool.query("create table effects (event_id uuid primary key, applied int not null)");
  });
  beforeEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
    await jsm.streams.purge("ORDERS");
    await jsm.streams.purge("INVENTORY");
    await pool.query("truncate effects");
  });
  afterAll(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
    await pool?.end();
    await nc?.close();
    await nats?.close();
  });

  /** Publishes events as the relay does; returns their ids. */
  async function publish(n: number, type: EventType = "orders.v1.order.confirmed"): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      const subject = randomUUID();
      const e = encodeEvent({ id, type, subject, time: new Date(), data: sampleData(type, subject, i) }, { source: "/order-service", format: "protobuf" });
      await js.publish(e.subject, e.payload, { msgID: e.msgID, headers: e.headers });
      ids.push(id);
    }
    return ids;
  }

  const applyEffect = (event: ReceivedEvent, tx: pg.PoolClient) =>
    tx.query("insert into effects (event_id, applied) values ($1, 1) on conflict (event_id) do update set applied = effects.applied + 1", [event.id]);

  async function effects(): Promise<Map<string, number>> {
    const { rows } = await pool.query<{ event_id: string; applied: number }>("select event_id, applied from effects");
    return new Map(rows.map((r) => [r.event_id, r.applied]));
  }

  async function settled(durable: string) {
    return eventually(async () => {
      const ci = await jsm.consumers.info("ORDERS", durable);
      return ci.num_pending === 0 && ci.num_ack_pending === 0 ? ci : undefined;
    }, `consumer ${durable} to have acknowledged everything`);
  }

  test("a handler that throws halfway through some events: rolled back, delivered again, applied once", async () => {
    const ids = await publish(30);
    const failOnce = new Set(ids.filter((_, i) => i % 4 === 1));
    const deliveries = new Map<string, number[]>();
    const durable = `crashy-${randomUUID().slice(0, 8)}`;
    const logger = captureLogger();
    const c = consume({
      nats: nc,
      stream: "ORDERS",
      durable,
      logger,
      redeliveryDelayMs: 50,
      inbox: { pool, consumer: durable },
      handle: async (event, tx) => {
        deliveries.set(event.id, [...(deliveries.get(event.id) ?? []), event.deliveryCount]);
        await applyEffect(event, tx);
        if (failOnce.delete(event.id)) throw new Error("handler crashed after applying its effect");
      },
    });
    consumers.push(c);
    await c.ready;
    await eventually(async () => (await effects()).size === 30, "every event to be applied");
    await settled(durable);
    const applied = await effects();
    expect([...applied.values()].every((n) => n === 1)).toBe(true);
    // The failed ones came again, as second deliveries.
    const again = [...deliveries].filter(([, counts]) => counts.length > 1);
    expect(again).toHaveLength(8);
    expect(again.every(([, counts]) => counts.join() === "1,2")).toBe(true);
    expect(logger.entries.filter((e) => e.msg === "handling an event failed; it will be delivered again")).toHaveLength(8);
  });

  test("a consumer killed after its commit and before its acknowledgement: the redelivery is recognised, not applied again", async () => {
    const ids = await publish(10);
    const durable = `killed-${randomUUID().slice(0, 8)}`;
    const crashOn = ids[4]!;
    // A process of its own, SIGKILLed by itself right after committing event 5.
    const child = spawn(process.execPath, [path.join(import.meta.dirname, "fixtures", "crashing-consumer.ts")], {
      env: { ...process.env, NATS_URL: nats.url, DATABASE_URL: url, DURABLE: durable, CRASH_ON: crashOn },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, s) => resolve(s)));
    expect(signal, stderr).toBe("SIGKILL");
    const before = await effects();
    expect(before.get(crashOn)).toBe(1);
    expect(before.size).toBeGreaterThanOrEqual(5);

    const handled: string[] = [];
    const logger = captureLogger();
    const c = consume({
      nats: nc,
      stream: "ORDERS",
      durable,
      ackWaitMs: 1000,
      logger,
      inbox: { pool, consumer: durable },
      handle: async (event, tx) => {
        handled.push(event.id);
        await applyEffect(event, tx);
      },
    });
    consumers.push(c);
    await c.ready;
    await eventually(async () => (await effects()).size === 10, "every event to be applied");
    await settled(durable);
    const after = await effects();
    expect([...after.values()].every((n) => n === 1)).toBe(true);
    // The event whose acknowledgement was lost came again and was only acknowledged.
    expect(handled).not.toContain(crashOn);
    expect(logger.entries.some((e) => e.msg === "event already handled; acknowledging it again" && e.obj.eventId === crashOn)).toBe(true);
  });

  test("an event published twice past JetStream's deduplication (other Nats-Msg-Id) is applied once", async () => {
    const durable = `dup-${randomUUID().slice(0, 8)}`;
    const id = randomUUID();
    const subject = randomUUID();
    const e = encodeEvent(
      { id, type: "orders.v1.order.placed", subject, time: new Date(), data: sampleData("orders.v1.order.placed", subject) },
      { source: "/order-service", format: "json" },
    );
    await js.publish(e.subject, e.payload, { msgID: `${id}-1`, headers: e.headers });
    await js.publish(e.subject, e.payload, { msgID: `${id}-2`, headers: e.headers });
    const [other] = await publish(1);
    expect((await jsm.streams.info("ORDERS")).state.messages).toBe(3);
    let calls = 0;
    const c = consume({
      nats: nc,
      stream: "ORDERS",
      durable,
      logger: captureLogger(),
      inbox: { pool, consumer: durable },
      handle: async (event, tx) => {
        calls++;
        await applyEffect(event, tx);
      },
    });
    consumers.push(c);
    await c.ready;
    await settled(durable);
    expect(calls).toBe(2);
    expect(Object.fromEntries(await effects())).toEqual({ [id]: 1, [other!]: 1 });
  });

  test("malformed messages are logged and terminated; the consumer goes on", async () => {
    const durable = `malformed-${randomUUID().slice(0, 8)}`;
    await js.publish("orders.v1.order.placed", new TextEncoder().encode("no headers at all"));
    const good = encodeEvent(
      { id: randomUUID(), type: "orders.v1.order.placed", subject: "s", time: new Date(), data: sampleData("orders.v1.order.placed", "s") },
      { source: "/order-service", format: "protobuf" },
    );
    await js.publish(good.subject, new Uint8Array([0xff, 0x01, 0x02]), { headers: good.headers, msgID: randomUUID() });
    const notUuid = headers();
    for (const [k, v] of good.headers) notUuid.set(k, v[0]!);
    notUuid.set("ce-id", "not-a-uuid");
    await js.publish(good.subject, good.payload, { headers: notUuid, msgID: randomUUID() });
    const [valid] = await publish(1);
    const logger = captureLogger();
    const c = consume({
      nats: nc,
      stream: "ORDERS",
      durable,
      logger,
      redeliveryDelayMs: 10,
      inbox: { pool, consumer: durable },
      handle: applyEffect as (e: ReceivedEvent, tx: pg.PoolClient) => Promise<never>,
    });
    consumers.push(c);
    await c.ready;
    const ci = await settled(durable);
    expect(Object.fromEntries(await effects())).toEqual({ [valid!]: 1 });
    const malformed = logger.entries.filter((e) => e.msg === "malformed event message; it is terminated, not handled");
    expect(malformed.map((e) => e.obj.error)).toEqual([
      expect.stringContaining("no headers"),
      expect.stringContaining("payload is not a orders.v1.OrderPlaced"),
      'ce-id "not-a-uuid" is not a UUID',
    ]);
    expect(malformed.every((e) => e.level === "error")).toBe(true);
    // Terminated: never delivered again.
    await sleep(300);
    expect((await jsm.consumers.info("ORDERS", durable)).num_redelivered).toBe(ci.num_redelivered);
    expect(logger.entries.filter((e) => e.msg === "malformed event message; it is terminated, not handled")).toHaveLength(3);
  });

  test("without an inbox: handled, then acknowledged; a failure is delivered again", async () => {
    const durable = `plain-${randomUUID().slice(0, 8)}`;
    const ids = await publish(5, "inventory.v1.stock.low");
    const seen: string[] = [];
    let failed = false;
    const c = consume({
      nats: nc,
      stream: "INVENTORY",
      durable,
      logger: captureLogger(),
      redeliveryDelayMs: 20,
      handle: (event) => {
        if (event.type !== "inventory.v1.stock.low") throw new Error(`unexpected ${event.type}`);
        if (!failed && event.id === ids[2]) {
          failed = true;
          throw new Error("once");
        }
        expect(event.data.threshold).toBe(5);
        expect(event.source).toBe("/order-service");
        seen.push(event.id);
      },
    });
    consumers.push(c);
    await c.ready;
    await eventually(() => seen.length === 5, "every event to be handled");
    expect(new Set(seen)).toEqual(new Set(ids));
    await eventually(async () => (await jsm.consumers.info("INVENTORY", durable)).num_ack_pending === 0, "acknowledgements");
  });

  test("an ephemeral consumer (a tail) sees new events only, of the types asked for, and leaves nothing behind", async () => {
    await publish(3);
    const seen: ReceivedEvent[] = [];
    const c = consume({
      nats: nc,
      stream: "ORDERS",
      deliverPolicy: "new",
      filterSubjects: ["orders.v1.order.placed"],
      logger: captureLogger(),
      handle: (event) => {
        seen.push(event);
      },
    });
    consumers.push(c);
    await c.ready;
    const [placed] = await publish(1, "orders.v1.order.placed");
    await publish(2, "orders.v1.order.confirmed");
    await eventually(() => seen.length === 1, "the new placed event");
    await sleep(200);
    expect(seen.map((e) => e.id)).toEqual([placed]);
    expect(seen[0]!.type).toBe("orders.v1.order.placed");
    const ephemerals = async () => {
      const names = [];
      for await (const ci of jsm.consumers.list("ORDERS")) if (!ci.config.durable_name) names.push(ci.name);
      return names;
    };
    expect(await ephemerals()).toHaveLength(1);
    await c.stop();
    expect(await ephemerals()).toEqual([]);
  });

  test("stop() lets the event being handled finish and commit, then resolves", async () => {
    const durable = `stop-${randomUUID().slice(0, 8)}`;
    const [first] = await publish(3);
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const c = consume({
      nats: nc,
      stream: "ORDERS",
      durable,
      ackWaitMs: 1000,
      logger: captureLogger(),
      inbox: { pool, consumer: durable },
      handle: async (event, tx) => {
        await applyEffect(event, tx);
        entered();
        await sleep(300);
      },
    });
    await c.ready;
    await inHandler;
    await c.stop();
    const applied = await effects();
    expect(applied.get(first!)).toBe(1);
    expect(applied.size).toBe(1);
    // The first was acknowledged; the others, pulled but not handled, come again to the next consumer.
    const ci = await jsm.consumers.info("ORDERS", durable);
    expect(ci.ack_floor.consumer_seq).toBe(1);
    const again = consume({ nats: nc, stream: "ORDERS", durable, ackWaitMs: 1000, logger: captureLogger(), inbox: { pool, consumer: durable }, handle: applyEffect as never });
    consumers.push(again);
    await eventually(async () => (await effects()).size === 3, "the rest to be handled by the next consumer", 5000);
    expect([...(await effects()).values()].every((n) => n === 1)).toBe(true);
  });

  test("waits for a stream that does not exist yet, then consumes it", async () => {
    await jsm.streams.delete("INVENTORY");
    const logger = captureLogger();
    const seen: string[] = [];
    const durable = `waiting-${randomUUID().slice(0, 8)}`;
    const c = consume({ nats: nc, stream: "INVENTORY", durable, logger, handle: (e) => void seen.push(e.id) });
    consumers.push(c);
    await eventually(() => logger.entries.some((e) => /waiting for stream INVENTORY/.test(e.msg ?? "")), "the wait to be logged");
    await ensureStreams(jsm, ["INVENTORY"]);
    await c.ready;
    const ids = await publish(2, "inventory.v1.stock.adjusted");
    await eventually(() => seen.length === 2, "both events");
    expect(seen).toEqual(ids);
  });
});
