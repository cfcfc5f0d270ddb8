import { expect } from "vitest";
import { SshError } from "../servers/ssh-error.ts";

/** The error an exec fails with (and that it fails). */
export async function sshFailure(promise: Promise<unknown>): Promise<SshError> {
  const err = await promise.then(
    () => {
      throw new Error("expected the exec to fail");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SshError);
  return err as SshError;
}
