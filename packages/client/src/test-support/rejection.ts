import { expect } from "vitest";
import { DynamoError } from "../errors.js";

/** The DynamoError a call rejects with (fails the test when it resolves or rejects otherwise). */
export async function rejection(promise: Promise<unknown>): Promise<DynamoError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DynamoError);
  return err as DynamoError;
}
