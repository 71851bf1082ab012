/**
 * The C library, as the only `Deno.dlopen` in meshub.
 *
 * One constant symbol table ({@linkcode LIBC_SYMBOLS}) lists every function meshub calls, with a
 * comment per parameter. The library is opened lazily on first use by {@linkcode libc} and stays
 * open for the life of the process (or until {@linkcode closeLibc}).
 *
 * Conventions:
 * - Buffers are passed as `"buffer"` parameters (a `Uint8Array`, passed as a pointer to its bytes).
 * - `read`/`write` results are declared `i32` rather than `isize`: `isize` comes back as
 *   `number | bigint`, and a packet is never near 2 GiB. The sign (-1 on error) survives.
 * - errno is read with {@linkcode errno} right after a failed *sync* call on the same thread;
 *   `nonblocking` calls run on another thread, so their errno is lost.
 * - `open`, `fcntl` and `ioctl` are variadic in C. Binding them with fixed signatures works on
 *   x86-64 and on Linux arm64, where variadic arguments travel in the same registers as fixed
 *   ones. Apple arm64 passes variadic arguments on the stack instead, so the `*_apple_arm64`
 *   bindings pad the six remaining argument registers to push the real argument onto the stack.
 *   Use the wrappers ({@linkcode sysOpen}, {@linkcode sysFcntl}, {@linkcode sysIoctl},
 *   {@linkcode sysIoctlValue}), which pick the right binding.
 *
 * @module
 */

const IS_DARWIN = Deno.build.os === "darwin";
const IS_APPLE_ARM64 = IS_DARWIN && Deno.build.arch === "aarch64";

/** Path or name of the C library for this OS. */
export const LIBC_PATH = IS_DARWIN ? "/usr/lib/libSystem.B.dylib" : "libc.so.6";

/** Six unused argument registers: on Apple arm64 they push the next (variadic) argument to the stack. */
const APPLE_PAD = ["i64", "i64", "i64", "i64", "i64", "i64"] as const;

/** Every libc function meshub binds. Keys are binding names; `name` is the C symbol when it differs. */
export const LIBC_SYMBOLS = {
  /** `int open(const char *path, int flags, mode_t mode)` */
  open: {
    parameters: [
      "buffer", // path: NUL-terminated UTF-8
      "i32", // flags: O_RDWR | O_NONBLOCK | O_CLOEXEC ...
      "u32", // mode: only used with O_CREAT
    ],
    result: "i32", // fd, or -1 and errno
  },
  /** `open` for Apple arm64, where `mode` is variadic and goes on the stack. */
  open_apple_arm64: {
    name: "open",
    parameters: [
      "buffer", // path
      "i32", // flags
      ...APPLE_PAD,
      "i64", // mode (variadic)
    ],
    result: "i32",
    optional: true,
  },
  /** `int close(int fd)` */
  close: {
    parameters: [
      "i32", // fd
    ],
    result: "i32", // 0, or -1 and errno
  },
  /** `ssize_t read(int fd, void *buf, size_t count)` */
  read: {
    parameters: [
      "i32", // fd
      "buffer", // buf: destination bytes
      "usize", // count: capacity of buf
    ],
    result: "i32", // bytes read, or -1 and errno (ssize_t truncated: packets are small)
  },
  /** `ssize_t write(int fd, const void *buf, size_t count)` */
  write: {
    parameters: [
      "i32", // fd
      "buffer", // buf: source bytes
      "usize", // count: bytes to write
    ],
    result: "i32", // bytes written, or -1 and errno
  },
  /** `int ioctl(int fd, unsigned long request, void *arg)`: request with a struct argument. */
  ioctl: {
    parameters: [
      "i32", // fd
      "u64", // request, e.g. TUNSETIFF, CTLIOCGINFO
      "buffer", // arg: pointer to the request's struct (ifreq, ctl_info ...)
    ],
    result: "i32", // >= 0, or -1 and errno
  },
  /** `ioctl` with an integer passed by value, e.g. TUNSETOFFLOAD flags. */
  ioctl_value: {
    name: "ioctl",
    parameters: [
      "i32", // fd
      "u64", // request
      "u64", // arg: the value itself
    ],
    result: "i32",
  },
  /** `ioctl` (struct argument) for Apple arm64. */
  ioctl_apple_arm64: {
    name: "ioctl",
    parameters: [
      "i32", // fd
      "u64", // request
      ...APPLE_PAD,
      "buffer", // arg (variadic): pointer to the request's struct
    ],
    result: "i32",
    optional: true,
  },
  /** `ioctl` (value argument) for Apple arm64. */
  ioctl_value_apple_arm64: {
    name: "ioctl",
    parameters: [
      "i32", // fd
      "u64", // request
      ...APPLE_PAD,
      "u64", // arg (variadic): the value
    ],
    result: "i32",
    optional: true,
  },
  /** `int fcntl(int fd, int cmd, long arg)` */
  fcntl: {
    parameters: [
      "i32", // fd
      "i32", // cmd: F_GETFL, F_SETFL, F_GETFD, F_SETFD
      "i64", // arg: flags for the F_SET* commands, ignored by F_GET*
    ],
    result: "i32", // result of cmd, or -1 and errno
  },
  /** `fcntl` for Apple arm64. */
  fcntl_apple_arm64: {
    name: "fcntl",
    parameters: [
      "i32", // fd
      "i32", // cmd
      ...APPLE_PAD,
      "i64", // arg (variadic)
    ],
    result: "i32",
    optional: true,
  },
  /** `int poll(struct pollfd *fds, nfds_t nfds, int timeout)`, run on a helper thread: await it. */
  poll_wait: {
    name: "poll",
    parameters: [
      "buffer", // fds: array of 8-byte struct pollfd {fd i32, events i16, revents i16}
      "u64", // nfds: number of entries
      "i32", // timeout: milliseconds, -1 forever (never use -1: nothing could wake it)
    ],
    result: "i32", // number of ready fds, 0 on timeout, -1 on error (errno lost: other thread)
    nonblocking: true,
  },
  /** `poll` on the calling thread, for a zero timeout check. */
  poll: {
    parameters: [
      "buffer", // fds
      "u64", // nfds
      "i32", // timeout ms
    ],
    result: "i32",
  },
  /** `int *__errno_location(void)` (Linux) or `int *__error(void)` (macOS): this thread's errno. */
  errno_location: {
    name: IS_DARWIN ? "__error" : "__errno_location",
    parameters: [],
    result: "pointer",
  },
  /** `char *strerror(int errnum)` */
  strerror: {
    parameters: [
      "i32", // errnum
    ],
    result: "pointer", // static NUL-terminated message: copy it at once
  },
  /** `uid_t getuid(void)` */
  getuid: { parameters: [], result: "u32" },
  /** `uid_t geteuid(void)` */
  geteuid: { parameters: [], result: "u32" },
  /** `int setgroups(size_t size, const gid_t *list)` (`int size` on macOS; same register) */
  setgroups: {
    parameters: [
      "usize", // size: entries in list (0 drops all supplementary groups)
      "buffer", // list: u32 gids, may be null when size is 0
    ],
    result: "i32",
  },
  /** `int setgid(gid_t gid)` */
  setgid: {
    parameters: [
      "u32", // gid
    ],
    result: "i32",
  },
  /** `int setuid(uid_t uid)` */
  setuid: {
    parameters: [
      "u32", // uid
    ],
    result: "i32",
  },
  /** `int socket(int domain, int type, int protocol)` */
  socket: {
    parameters: [
      "i32", // domain, e.g. PF_SYSTEM (macOS utun)
      "i32", // type, e.g. SOCK_DGRAM
      "i32", // protocol, e.g. SYSPROTO_CONTROL
    ],
    result: "i32", // fd, or -1 and errno
  },
  /** `int connect(int fd, const struct sockaddr *addr, socklen_t len)` */
  connect: {
    parameters: [
      "i32", // fd
      "buffer", // addr: e.g. struct sockaddr_ctl
      "u32", // len: bytes of addr
    ],
    result: "i32",
  },
  /** `int bind(int fd, const struct sockaddr *addr, socklen_t len)` */
  bind: {
    parameters: [
      "i32", // fd
      "buffer", // addr: struct sockaddr_in / sockaddr_in6
      "u32", // len: bytes of addr
    ],
    result: "i32", // 0, or -1 and errno
  },
  /** `int getsockname(int fd, struct sockaddr *addr, socklen_t *len)` */
  getsockname: {
    parameters: [
      "i32", // fd
      "buffer", // addr: output, at least 28 bytes
      "buffer", // len: in/out u32, capacity then length
    ],
    result: "i32",
  },
  /** `int setsockopt(int fd, int level, int name, const void *value, socklen_t len)` */
  setsockopt: {
    parameters: [
      "i32", // fd
      "i32", // level, e.g. SOL_SOCKET, IPPROTO_IPV6, SOL_UDP
      "i32", // name, e.g. SO_RCVBUF, IPV6_V6ONLY, UDP_GRO
      "buffer", // value: usually one i32
      "u32", // len: bytes of value
    ],
    result: "i32",
  },
  /** `int shutdown(int fd, int how)`: wakes a `poll` on the socket in another thread. */
  shutdown: {
    parameters: [
      "i32", // fd
      "i32", // how: SHUT_RDWR 2
    ],
    result: "i32",
  },
  /** `ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)` */
  sendto: {
    parameters: [
      "i32", // fd
      "buffer", // buf: datagram
      "usize", // len
      "i32", // flags: MSG_DONTWAIT ...
      "buffer", // to: struct sockaddr_in / sockaddr_in6
      "u32", // tolen
    ],
    result: "i32", // bytes sent, or -1 and errno
  },
  /** `int sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags)` (Linux only) */
  sendmmsg: {
    parameters: [
      "i32", // fd
      "buffer", // msgvec: array of 64-byte struct mmsghdr
      "u32", // vlen: entries
      "i32", // flags
    ],
    result: "i32", // messages sent, or -1 and errno (when the first one failed)
    optional: true,
  },
  /**
   * `int recvmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
   * struct timespec *timeout)` (Linux only)
   */
  recvmmsg: {
    parameters: [
      "i32", // fd
      "buffer", // msgvec: array of 64-byte struct mmsghdr; msg_len is written back
      "u32", // vlen: entries
      "i32", // flags: MSG_DONTWAIT ...
      "pointer", // timeout: always null (the fd is non-blocking)
    ],
    result: "i32", // messages received, or -1 and errno (EAGAIN: none ready)
    optional: true,
  },
  /** `int getsockopt(int fd, int level, int name, void *value, socklen_t *len)` */
  getsockopt: {
    parameters: [
      "i32", // fd
      "i32", // level, e.g. SYSPROTO_CONTROL
      "i32", // name, e.g. UTUN_OPT_IFNAME
      "buffer", // value: output bytes
      "buffer", // len: in/out u32, capacity then length
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened C library. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

let lib: Libc | undefined;

/** Opens the C library on first call and returns it; later calls return the same handle. */
export function libc(): Libc {
  if (lib === undefined) {
    try {
      lib = Deno.dlopen(LIBC_PATH, LIBC_SYMBOLS);
    } catch (cause) {
      throw new Error(
        `Cannot load the C library ${LIBC_PATH}: ${
          cause instanceof Error ? cause.message : cause
        } (FFI needs --allow-ffi)`,
        { cause },
      );
    }
  }
  return lib;
}

/** Closes the C library if it was opened. Later calls to {@linkcode libc} reopen it. */
export function closeLibc(): void {
  lib?.close();
  lib = undefined;
}

/** errno values meshub tests for, with this OS's numbers. */
export const ERRNO = IS_DARWIN
  ? {
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    ENXIO: 6,
    EBADF: 9,
    ENOMEM: 12,
    EACCES: 13,
    EBUSY: 16,
    EEXIST: 17,
    ENODEV: 19,
    EINVAL: 22,
    EAGAIN: 35,
    ENOBUFS: 55,
    EMSGSIZE: 40,
    EAFNOSUPPORT: 47,
    EADDRINUSE: 48,
  } as const
  : {
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    ENXIO: 6,
    EBADF: 9,
    ENOMEM: 12,
    EACCES: 13,
    EBUSY: 16,
    EEXIST: 17,
    ENODEV: 19,
    EINVAL: 22,
    EAGAIN: 11,
    ENOBUFS: 105,
    EMSGSIZE: 90,
    EAFNOSUPPORT: 97,
    EADDRINUSE: 98,
  } as const;

/** The errno of the last failed sync libc call on this thread. */
export function errno(): number {
  const p = libc().symbols.errno_location();
  // Cannot be null per POSIX; guard anyway so a broken libc gives a number, not a crash.
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/** The C library's message for `code`, e.g. "Operation not permitted". */
export function strerror(code: number): string {
  const p = libc().symbols.strerror(code);
  return p === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(p);
}

function errnoName(code: number): string | undefined {
  for (const [name, value] of Object.entries(ERRNO)) {
    if (value === code) return name;
  }
  return undefined;
}

/** A failed system call, with its errno and libc's message. */
export class OsError extends Error {
  /** The errno value, e.g. 1 for EPERM. */
  readonly errno: number;
  /** The system call that failed, e.g. `"ioctl(TUNSETIFF)"`. */
  readonly syscall: string;
  /** The symbolic errno name when known, e.g. `"EPERM"`. */
  readonly code: string | undefined;

  /**
   * @param syscall What failed, e.g. `"open(/dev/net/tun)"`.
   * @param errnoValue The errno value.
   * @param options `message` replaces the default "syscall: message (ENAME)" text; `cause` wraps.
   */
  constructor(
    syscall: string,
    errnoValue: number,
    options: { message?: string; cause?: unknown } = {},
  ) {
    const code = errnoName(errnoValue);
    const detail = `${describeErrno(errnoValue)} (${code ?? `errno ${errnoValue}`})`;
    super(
      options.message === undefined
        ? `${syscall} failed: ${detail}`
        : `${options.message}: ${syscall} failed: ${detail}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "OsError";
    this.errno = errnoValue;
    this.syscall = syscall;
    this.code = code;
  }
}

function describeErrno(code: number): string {
  try {
    return strerror(code);
  } catch {
    // No FFI permission or no libc: still produce a message.
    return `errno ${code}`;
  }
}

/** Throws an {@linkcode OsError} with the current errno when `result` is negative; else returns it. */
export function check(result: number, syscall: string, message?: string): number {
  if (result < 0) {
    throw new OsError(syscall, errno(), message === undefined ? {} : { message });
  }
  return result;
}

/** NUL-terminated UTF-8 bytes of `s`, for `const char *` parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** `open(path, flags, mode)` with the right binding for this platform. */
export function sysOpen(path: string, flags: number, mode = 0): number {
  const s = libc().symbols;
  const p = cString(path);
  return IS_APPLE_ARM64
    ? s.open_apple_arm64!(p, flags, 0n, 0n, 0n, 0n, 0n, 0n, BigInt(mode))
    : s.open(p, flags, mode);
}

/** `fcntl(fd, cmd, arg)` with the right binding for this platform. */
export function sysFcntl(fd: number, cmd: number, arg = 0): number {
  const s = libc().symbols;
  return IS_APPLE_ARM64
    ? s.fcntl_apple_arm64!(fd, cmd, 0n, 0n, 0n, 0n, 0n, 0n, BigInt(arg))
    : s.fcntl(fd, cmd, BigInt(arg));
}

/** `ioctl(fd, request, &struct)` with the right binding for this platform. */
export function sysIoctl(fd: number, request: number | bigint, arg: Uint8Array): number {
  const s = libc().symbols;
  const req = BigInt(request);
  return IS_APPLE_ARM64
    ? s.ioctl_apple_arm64!(fd, req, 0n, 0n, 0n, 0n, 0n, 0n, arg)
    : s.ioctl(fd, req, arg);
}

/** `ioctl(fd, request, value)` with the value passed by value, right binding for this platform. */
export function sysIoctlValue(
  fd: number,
  request: number | bigint,
  value: number | bigint,
): number {
  const s = libc().symbols;
  const req = BigInt(request);
  return IS_APPLE_ARM64
    ? s.ioctl_value_apple_arm64!(fd, req, 0n, 0n, 0n, 0n, 0n, 0n, BigInt(value))
    : s.ioctl_value(fd, req, BigInt(value));
}
