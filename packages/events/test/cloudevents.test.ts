import { randomUUID } from "node:crypto";
import { headers } from "@nats-io/nats-core";
import { describe, expect, test } from "vitest";
import { EVENT_TYPES, type EventType } from "../src/catalogue.ts";
import { decodeEvent, encodeEvent, EventFormatError, parseCloudEventHeaders } from "../src/cloudevents.ts";
import { sampleData } from "./fixtures.ts";

/** The CloudEvents envelope and the payload encodings, without a broker. */
describe("CloudEvents over NATS headers", () => {
  const types = Object.keys(EVENT_TYPES) as EventType[];

  for (const format of ["protobuf", "json"] as const) {
    test(`every event type survives encoding and decoding in ${format}`, () => {
      for (const type of types) {
        const id = randomUUID();
        const subject = randomUUID();
        const time = new Date("2026-01-02T03:04:05.678Z");
        const data = sampleData(type, subject, 3);
        const encoded = encodeEvent({ id, type, subject, time, data }, { source: "/inventory-service", format });
        expect(encoded.subject).toBe(type);
        expect(encoded.msgID).toBe(id);
        const decoded = decodeEvent(encoded.headers, encoded.payload);
        if (!decoded.ok) throw new Error(decoded.error);
        expect(decoded.value.attributes).toEqual({
          specversion: "1.0",
          id,
          source: "/inventory-service",
          type,
          subject,
          time,
          datacontenttype: format === "protobuf" ? "application/protobuf" : "application/json",
          dataschema: EVENT_TYPES[type].typeName,
        });
        expect(decoded.value.data.$typeName).toBe(EVENT_TYPES[type].typeName);
        expect(encoded.headers.get("ce-time")).toBe("2026-01-02T03:04:05.678Z");
        if (format === "json") {
          // The proto3 JSON mapping, as stored (normalised: defaults left out).
          const text = new TextDecoder().decode(encoded.payload);
          expect(JSON.parse(text)).toMatchObject(type.startsWith("orders.") ? { order: { id: subject } } : {});
        }
      }
    });
  }

  test("an int64 keeps its value through both encodings", () => {
    const data = sampleData("orders.v1.order.confirmed", randomUUID());
    (data.order as { totalMinor: string }).totalMinor = "9007199254740993"; // above 2^53
    for (const format of ["protobuf", "json"] as const) {
      const e = encodeEvent({ id: randomUUID(), type: "orders.v1.order.confirmed", subject: "s", time: new Date(), data }, { source: "/x", format });
      const d = decodeEvent(e.headers, e.payload);
      if (!d.ok || d.value.type !== "orders.v1.order.confirmed") throw new Error("not decoded");
      expect(d.value.data.order?.totalMinor).toBe(9007199254740993n);
    }
  });

  test("refuses to encode an unknown type or data that is not the type's message", () => {
    const base = { id: randomUUID(), subject: "s", time: new Date() };
    expect(() => encodeEvent({ ...base, type: "orders.v1.order.lost", data: {} }, { source: "/x", format: "protobuf" })).toThrow(EventFormatError);
    expect(() =>
      encodeEvent({ ...base, type: "orders.v1.order.placed", data: { order: { nope: 1 } } }, { source: "/x", format: "protobuf" }),
    ).toThrow(/not a orders.v1.OrderPlaced/);
    expect(() =>
      encodeEvent({ ...base, type: "inventory.v1.stock.low", data: { threshold: "many" } }, { source: "/x", format: "json" }),
    ).toThrow(EventFormatError);
  });

  test("reports what is wrong with a message that is not one of our events, without throwing", () => {
    const good = encodeEvent(
      { id: randomUUID(), type: "inventory.v1.stock.low", subject: "p", time: new Date(), data: sampleData("inventory.v1.stock.low", "p") },
      { source: "/inventory-service", format: "protobuf" },
    );
    const without = (...names: string[]) => {
      const h = headers();
      for (const [k, v] of good.headers) if (!names.includes(k)) h.set(k, v[0]!);
      return h;
    };
    const withValue = (name: string, value: string) => {
      const h = without(name);
      h.set(name, value);
      return h;
    };
    expect(parseCloudEventHeaders(undefined)).toMatchObject({ ok: false, error: expect.stringContaining("no headers") });
    expect(parseCloudEventHeaders(without("ce-id", "ce-source"))).toEqual({ ok: false, error: "missing CloudEvents attributes ce-id, ce-source" });
    expect(parseCloudEventHeaders(without("ce-type"))).toEqual({ ok: false, error: "missing CloudEvents attribute ce-type" });
    expect(parseCloudEventHeaders(withValue("ce-specversion", "0.3"))).toMatchObject({ ok: false, error: expect.stringContaining("ce-specversion") });
    expect(parseCloudEventHeaders(withValue("ce-type", "inventory.v1.stock.gone"))).toMatchObject({ ok: false, error: expect.stringContaining("unknown ce-type") });
    expect(parseCloudEventHeaders(withValue("ce-time", "yesterday"))).toMatchObject({ ok: false, error: expect.stringContaining("RFC 3339") });
    expect(parseCloudEventHeaders(withValue("ce-datacontenttype", "text/plain"))).toMatchObject({ ok: false, error: expect.stringContaining("unsupported ce-datacontenttype") });
    expect(parseCloudEventHeaders(withValue("ce-dataschema", "orders.v1.OrderPlaced"))).toMatchObject({ ok: false, error: expect.stringContaining("is not inventory.v1.StockLow") });
    // The payload must be the message in the content type given.
    expect(decodeEvent(good.headers, new Uint8Array([0xff, 0xff, 0xff]))).toMatchObject({ ok: false, error: expect.stringContaining("payload is not a inventory.v1.StockLow") });
    expect(decodeEvent(withValue("ce-datacontenttype", "application/json"), good.payload)).toMatchObject({ ok: false });
    // Header names are matched whatever their case; a content type may carry parameters.
    const shouted = headers();
    for (const [k, v] of good.headers) shouted.set(k.toUpperCase(), v[0]!);
    shouted.set("CE-DATACONTENTTYPE", "application/protobuf; proto=inventory.v1.StockLow");
    expect(decodeEvent(shouted, good.payload).ok).toBe(true);
  });
});
