import { headers } from "@nats-io/nats-core";
import { StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { natsServerAvailable, natsSuiteName, startOwnNats, type OwnNats } from "../../../tools/nats.ts";
import { connectNats, jetStreamManagerOf, jetStreamOf, type NatsConnection } from "../src/nats.ts";
import { ensureStreams, streamConfig } from "../src/streams.ts";

describe.skipIf(!natsServerAvailable())(natsSuiteName("ensureStreams"), () => {
  let nats: OwnNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startOwnNats();
    nc = await connectNats({ url: nats.url, name: "streams test" });
    jsm = await jetStreamManagerOf(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.close();
  });

  test("creates the catalogue's streams, and a second call changes nothing", async () => {
    expect(await ensureStreams(jsm)).toEqual({ ORDERS: "created", INVENTORY: "created" });
    expect(await ensureStreams(jsm)).toEqual({ ORDERS: "unchanged", INVENTORY: "unchanged" });
    for (const name of ["ORDERS", "INVENTORY"] as const) {
      const { config } = await jsm.streams.info(name);
      expect(config).toMatchObject({
        subjects: streamConfig(name).subjects,
        storage: "file",
        retention: "limits",
        max_age: 7 * 24 * 3600 * 1e9,
        duplicate_window: 120 * 1e9,
      });
    }
    // Replicas starting together all succeed.
    const results = await Promise.all([ensureStreams(jsm), ensureStreams(jsm), ensureStreams(jsm)]);
    expect(results.every((r) => r.ORDERS === "unchanged")).toBe(true);
  });

  test("brings an existing stream with other settings into line and keeps its messages", async () => {
    await jsm.streams.delete("INVENTORY").catch(() => {});
    await jsm.streams.add({ name: "INVENTORY", subjects: ["inventory.v1.stock.*"], max_age: 3600 * 1e9, duplicate_window: 5 * 1e9, max_msgs: 1000 });
    const js = jetStreamOf(nc);
    const h = headers();
    h.set("ce-id", "kept");
    await js.publish("inventory.v1.stock.low", new Uint8Array([1, 2, 3]), { headers: h });
    expect(await ensureStreams(jsm, ["INVENTORY"])).toEqual({ INVENTORY: "updated" });
    const info = await jsm.streams.info("INVENTORY");
    expect(info.config).toMatchObject({ subjects: ["inventory.v1.>"], max_age: 7 * 24 * 3600 * 1e9, duplicate_window: 120 * 1e9 });
    // What an operator set and this code does not own stays.
    expect(info.config.max_msgs).toBe(1000);
    expect(info.state.messages).toBe(1);
    expect(await ensureStreams(jsm, ["INVENTORY"])).toEqual({ INVENTORY: "unchanged" });
  });

  test("refuses, rather than recreates, a stream kept in memory", async () => {
    await jsm.streams.delete("ORDERS").catch(() => {});
    await jsm.streams.add({ name: "ORDERS", subjects: ["orders.v1.>"], storage: StorageType.Memory });
    await expect(ensureStreams(jsm, ["ORDERS"])).rejects.toThrow(/memory storage, not file/);
    expect((await jsm.streams.info("ORDERS")).config.storage).toBe("memory");
  });
});
