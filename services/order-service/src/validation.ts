import type { FastifySchemaCompiler, FastifySchemaValidationError } from "fastify";
import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";
import { Value } from "typebox/value";
import type { FieldError } from "./errors.ts";

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
    // additionalProperties: false reports each unknown field twice; the
    // "additionalProperties" entry names it, the "boolean" one adds nothing.
    const errors = checker.Errors(value).filter((e) => e.keyword !== "boolean");
    return { error: errors as unknown as FastifySchemaValidationError[] };
  };
};

interface CheckerError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/**
 * Turns validation errors of one request part into field errors people can
 * act on: the JSON pointer of the field (`/body/items/0/quantity`) and what
 * is wrong with it.
 */
export function toFieldErrors(part: string, errors: readonly CheckerError[]): FieldError[] {
  const seen = new Set<string>();
  const result: FieldError[] = [];
  const add = (field: string, message: string) => {
    const key = `${field}\u0000${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    result.push({ field, message });
  };
  for (const e of errors) {
    const at = `/${part}${e.instancePath}`;
    const names = (key: string) => (Array.isArray(e.params[key]) ? (e.params[key] as string[]) : []);
    if (e.keyword === "required") {
      for (const name of names("requiredProperties")) add(`${at}/${name}`, "is required");
    } else if (e.keyword === "additionalProperties") {
      for (const name of names("additionalProperties")) add(`${at}/${name}`, "is not an accepted field");
    } else if (e.keyword === "enum") {
      add(at, `must be one of ${names("allowedValues").join(", ")}`);
    } else {
      add(at, e.message ?? `fails ${e.keyword}`);
    }
  }
  return result;
}
