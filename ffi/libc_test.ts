import assert from "node:assert/strict";
import { check, cString, ERRNO, errno, libc, OsError, strerror, sysFcntl } from "./libc.ts";

Deno.test("libc() loads the symbol table once and returns the same handle", () => {
  const a = libc();
  assert.equal(a, libc());
  for (const name of ["open", "read", "write", "ioctl", "ioctl_value", "poll", "poll_wait"]) {
    assert.equal(typeof (a.symbols as Record<string, unknown>)[name], "function", name);
  }
});

Deno.test("errno() reports EBADF after close(-1)", () => {
  assert.equal(libc().symbols.close(-1), -1);
  assert.equal(errno(), ERRNO.EBADF);
});

Deno.test("check() turns a failed sysFcntl() into an OsError with errno and syscall", () => {
  const result = sysFcntl(-1, 3);
  assert.throws(() => check(result, "fcntl(F_GETFL)"), (e: unknown) => {
    assert.ok(e instanceof OsError);
    assert.equal(e.errno, ERRNO.EBADF);
    assert.equal(e.code, "EBADF");
    assert.equal(e.syscall, "fcntl(F_GETFL)");
    assert.equal(e.message, "fcntl(F_GETFL) failed: Bad file descriptor (EBADF)");
    return true;
  });
});

Deno.test("OsError reads as hint, syscall and strerror, and keeps its cause", () => {
  const cause = new Error("inner");
  const e = new OsError("ioctl(TUNSETIFF)", ERRNO.EPERM, {
    message: "creating TUN device meshub0 needs root or CAP_NET_ADMIN",
    cause,
  });
  assert.equal(
    e.message,
    "creating TUN device meshub0 needs root or CAP_NET_ADMIN: ioctl(TUNSETIFF) failed: " +
      "Operation not permitted (EPERM)",
  );
  assert.equal(e.name, "OsError");
  assert.equal(e.cause, cause);
  assert.equal(strerror(ERRNO.ENOENT), "No such file or directory");
  assert.match(new OsError("x", 9999).message, /errno 9999/);
});

Deno.test("cString() appends a NUL", () => {
  assert.deepEqual([...cString("ab")], [97, 98, 0]);
});
