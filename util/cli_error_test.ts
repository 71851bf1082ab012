import assert from "node:assert/strict";
import {
  describeError,
  INTERNAL_ERROR_EXIT_CODE,
  USER_ERROR_EXIT_CODE,
  UserError,
} from "./cli_error.ts";

Deno.test("describeError() prints a UserError as one line with its exit code", () => {
  assert.deepEqual(describeError(new UserError("client.toml: node.name: required")), {
    text: "meshub: client.toml: node.name: required",
    exitCode: USER_ERROR_EXIT_CODE,
  });
  assert.deepEqual(describeError(new UserError("no TUN permission", { exitCode: 77 })), {
    text: "meshub: no TUN permission",
    exitCode: 77,
  });
});

Deno.test("describeError() reports subclasses of UserError as user errors", () => {
  class FooError extends UserError {}
  const report = describeError(new FooError("bad foo"));
  assert.equal(report.text, "meshub: bad foo");
  assert.equal(report.exitCode, 2);
});

Deno.test("describeError() reports other errors as internal, with the stack", () => {
  const report = describeError(new TypeError("x is undefined"));
  assert.equal(report.exitCode, INTERNAL_ERROR_EXIT_CODE);
  const lines = report.text.split("\n");
  assert.equal(lines[0], "meshub: internal error: x is undefined");
  assert.ok(lines.length > 1, "stack expected");
  assert.match(lines[1]!, /^\s+at /);
});

Deno.test("describeError() copes with thrown non-errors", () => {
  assert.deepEqual(describeError("boom"), {
    text: "meshub: internal error: boom",
    exitCode: INTERNAL_ERROR_EXIT_CODE,
  });
});

Deno.test("UserError keeps its cause", () => {
  const cause = new Error("EACCES");
  const err = new UserError("cannot read x", { cause });
  assert.equal(err.cause, cause);
  assert.ok(err instanceof Error);
});
