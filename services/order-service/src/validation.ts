import type { FastifySchemaCompiler, FastifySchemaValidationError } from "fastify";
import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";
import { Value } from "typebox/value";
import { quote, type FieldError } from "./errors.ts";

/**
 * Validates requests with TypeBox's compiled checker. Bodies are JSON and
 * must match their schema exactly (no coercion, no stripping of unknown
 * fields); query strings and path parameters arrive as text, so they are
 * converted to the schema's types and given its defaults first.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = Compile(schema);
  return (input: unknown) => {
    const value = httpPart === "body" ? input : Value.Default(schema, Value.Convert(schema, input));
    if (checker.Check(value)) return { value };
    return { error: checker.Errors(value) as unknown as FastifySchemaValidationError[] };
  };
};

interface CheckerError {
  keyword: string;
  schemaPath?: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/**
 * Turns validation errors of one request part into field errors people can
 * act on: the JSON pointer of the field (`/body/items/0/quantity`) and what
 * is wrong with it. A pointer names what the client sent (an unknown
 * field's name), so it is quoted within bounds.
 */
export function toFieldErrors(part: string, errors: readonly CheckerError[]): FieldError[] {
  const seen = new Set<string>();
  const result: FieldError[] = [];
  const add = (field: string, message: string) => {
    const key = `${field}\u0000${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    result.push({ field: quote(field), message: quote(message, 200) });
  };
  for (const e of errors) {
    const at = `/${part}${e.instancePath}`;
    const names = (key: string) => (Array.isArray(e.params[key]) ? (e.params[key] as string[]) : []);
    if (e.keyword === "required") {
      for (const name of names("requiredProperties")) add(`${at}/${name}`, "is required");
    } else if (e.keyword === "additionalProperties") {
      for (const name of names("additionalProperties")) add(`${at}/${name}`, "is not an accepted field");
    } else if (e.keyword === "boolean" && e.schemaPath?.endsWith("/additionalProperties")) {
      // additionalProperties: false reports an unknown field twice, as
      // above and as this; TypeBox stops after a few errors, so this may
      // be the only report of it.
      add(at, "is not an accepted field");
    } else if (e.keyword === "enum") {
      add(at, `must be one of ${names("allowedValues").join(", ")}`);
    } else {
      add(at, e.message ?? `fails ${e.keyword}`);
    }
  }
  return result;
}
