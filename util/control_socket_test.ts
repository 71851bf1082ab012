import assert from "node:assert/strict";
import {
  answer,
  ControlCommandError,
  ControlConnectError,
  controlRequest,
  ControlServer,
  parseRequest,
} from "./control_socket.ts";
import { UserError } from "./cli_error.ts";

Deno.test("parseRequest() accepts version 1 requests and names what is wrong with others", () => {
  assert.deepEqual(parseRequest('{"v":1,"cmd":"status"}'), { request: { v: 1, cmd: "status" } });
  assert.deepEqual(parseRequest('{"v":1,"cmd":"ping","peer":"c2"}'), {
    request: { v: 1, cmd: "ping", peer: "c2" },
  });
  assert.deepEqual(parseRequest("nope"), { error: "request is not JSON" });
  assert.deepEqual(parseRequest("[1]"), { error: "request must be a JSON object" });
  assert.deepEqual(parseRequest('{"v":2,"cmd":"status"}'), {
    error: "unsupported protocol version 2",
  });
  assert.deepEqual(parseRequest('{"cmd":"status"}'), {
    error: "unsupported protocol version undefined",
  });
  assert.deepEqual(parseRequest('{"v":1}'), { error: "request needs a cmd" });
});

Deno.test("answer() turns results, command errors and bugs into one response line", async () => {
  const handler = (r: { cmd: string }) => {
    if (r.cmd === "ok") return { x: 1 };
    if (r.cmd === "bad") throw new ControlCommandError("no such peer");
    throw new TypeError("boom");
  };
  assert.equal(await answer('{"v":1,"cmd":"ok"}', handler), '{"v":1,"ok":true,"result":{"x":1}}');
  assert.equal(
    await answer('{"v":1,"cmd":"bad"}', handler),
    '{"v":1,"ok":false,"error":"no such peer"}',
  );
  assert.equal(
    await answer('{"v":1,"cmd":"x"}', handler),
    '{"v":1,"ok":false,"error":"internal error: boom"}',
  );
  assert.equal(await answer("{", handler), '{"v":1,"ok":false,"error":"request is not JSON"}');
});

Deno.test("ControlServer: 0700 directory, 0600 socket, requests answered, refuses a second owner, file removed on close", async () => {
  const base = await Deno.makeTempDir({ prefix: "meshub-ctl-" });
  const path = `${base}/run/meshub/test.sock`;
  try {
    const server = await ControlServer.open(path);
    assert.equal((await Deno.stat(`${base}/run/meshub`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.lstat(path)).mode! & 0o777, 0o600);
    await assert.rejects(
      () => controlRequest(path, { cmd: "status" }),
      (e: Error) => e instanceof ControlCommandError && /starting up/.test(e.message),
    );
    server.setHandler((r) => {
      if (r.cmd === "status") return { name: "c1", peers: [1, 2] };
      throw new ControlCommandError(`unknown command "${r.cmd}"`);
    });
    assert.deepEqual(await controlRequest(path, { cmd: "status" }), { name: "c1", peers: [1, 2] });
    await assert.rejects(
      () => controlRequest(path, { cmd: "nope" }),
      (e: Error) => e instanceof ControlCommandError && e.message === 'unknown command "nope"',
    );
    // Several at once.
    const many = await Promise.all(
      Array.from({ length: 10 }, () => controlRequest(path, { cmd: "status" })),
    );
    assert.equal(many.length, 10);
    await assert.rejects(
      () => ControlServer.open(path),
      (e: Error) => e instanceof UserError && /another meshub process is running/.test(e.message),
    );
    await server.close();
    await assert.rejects(() => Deno.lstat(path), Deno.errors.NotFound);
    await assert.rejects(
      () => controlRequest(path, { cmd: "status" }, { what: "meshub client" }),
      (e: Error) =>
        e instanceof ControlConnectError &&
        e.message === `no meshub client is running (control socket ${path}: no such socket)`,
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("ControlServer: a socket left by a dead process is replaced; a regular file is not touched", async () => {
  const base = await Deno.makeTempDir({ prefix: "meshub-ctl-" });
  try {
    const stale = `${base}/stale.sock`;
    const dead = Deno.listen({ transport: "unix", path: stale });
    dead.close(); // Deno removes nothing: the socket file stays, nobody listens
    try {
      await Deno.lstat(stale);
    } catch {
      await Deno.writeFile(stale, new Uint8Array()); // (if the runtime did remove it)
      await Deno.remove(stale);
    }
    const server = await ControlServer.open(stale);
    server.setHandler(() => "hi");
    assert.equal(await controlRequest(stale, { cmd: "x" }), "hi");
    await server.close();

    const file = `${base}/file.sock`;
    await Deno.writeTextFile(file, "precious");
    await assert.rejects(
      () => ControlServer.open(file),
      (e: Error) => e instanceof UserError && /not a socket/.test(e.message),
    );
    assert.equal(await Deno.readTextFile(file), "precious");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
