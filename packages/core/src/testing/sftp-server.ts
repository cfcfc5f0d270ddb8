import { constants, type Stats } from "node:fs";
import { chmod, type FileHandle, lstat, mkdir, open, rename, rm, rmdir, stat, utimes } from "node:fs/promises";
import { resolve } from "node:path";
import ssh2, { type Attributes, type InputAttributes, type SFTPWrapper } from "ssh2";

/**
 * The SFTP subsystem of the test SSH server (testing/ssh-server.ts), backed
 * by the local filesystem: relative paths resolve against the server's
 * working directory (its stand-in for the login directory), absolute ones
 * are taken as they are. Errors are reported with the status codes
 * OpenSSH's sftp-server uses for the same errno (EEXIST is a plain FAILURE).
 */

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;
/** What a request's work returns when it sent its own reply (a handle, data, attributes). */
const ANSWERED = Symbol("answered");

/** Serves one SFTP session until it closes; `log` gets each request (`OPEN path`, `WRITE path`, …). */
export function serveSftp(sftp: SFTPWrapper, cwd: string, log: (request: string) => void): void {
  const handles = new Map<string, { file: FileHandle; path: string }>();
  let nextHandle = 0;
  const at = (path: string) => resolve(cwd, path);
  const fail = (reqId: number, err: unknown) => {
    const { code, message } = err as NodeJS.ErrnoException;
    sftp.status(reqId, statusOf(code), message);
  };
  const ok = (reqId: number) => sftp.status(reqId, STATUS_CODE.OK);
  /** Runs `work`, answering OK (or what it answered itself) or the error. */
  const answer = (reqId: number, work: () => Promise<unknown>) => {
    work().then(
      (done) => done !== ANSWERED && ok(reqId),
      (err: unknown) => fail(reqId, err),
    );
  };
  const handleOf = (reqId: number, handle: Buffer) => {
    const open = handles.get(handle.toString("hex"));
    if (!open) sftp.status(reqId, STATUS_CODE.FAILURE, "Invalid handle");
    return open;
  };

  sftp.on("error", () => {});
  // The client closed its side: close ours, as sshd does once sftp-server exits (ssh2 does not for SFTP channels).
  sftp.on("end", () => sftp.end());
  sftp.on("close", () => {
    for (const { file } of handles.values()) void file.close().catch(() => {});
    handles.clear();
  });

  sftp.on("OPEN", (reqId, filename, flags, attrs) => {
    const path = at(filename);
    log(`OPEN ${path}`);
    answer(reqId, async () => {
      const file = await open(path, openFlags(flags), (attrs as Partial<Attributes> | undefined)?.mode ?? 0o666);
      const handle = Buffer.alloc(4);
      handle.writeUInt32BE(nextHandle++);
      handles.set(handle.toString("hex"), { file, path });
      sftp.handle(reqId, handle);
      return ANSWERED;
    });
  });
  sftp.on("WRITE", (reqId, handle, offset, data) => {
    const open = handleOf(reqId, handle);
    if (!open) return;
    log(`WRITE ${open.path}`);
    answer(reqId, async () => {
      await open.file.write(data, 0, data.length, offset);
    });
  });
  sftp.on("READ", (reqId, handle, offset, length) => {
    const open = handleOf(reqId, handle);
    if (!open) return;
    answer(reqId, async () => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await open.file.read(buffer, 0, length, offset);
      if (bytesRead === 0) sftp.status(reqId, STATUS_CODE.EOF);
      else sftp.data(reqId, buffer.subarray(0, bytesRead));
      return ANSWERED;
    });
  });
  sftp.on("CLOSE", (reqId, handle) => {
    const open = handleOf(reqId, handle);
    if (!open) return;
    handles.delete(handle.toString("hex"));
    answer(reqId, () => open.file.close());
  });
  sftp.on("FSTAT", (reqId, handle) => {
    const open = handleOf(reqId, handle);
    if (!open) return;
    answer(reqId, async () => {
      sftp.attrs(reqId, attributes(await open.file.stat()));
      return ANSWERED;
    });
  });
  sftp.on("FSETSTAT", (reqId, handle, attrs) => {
    const open = handleOf(reqId, handle);
    if (!open) return;
    log(`SETSTAT ${open.path}`);
    answer(reqId, () => setAttributes(open.path, attrs));
  });
  sftp.on("SETSTAT", (reqId, path, attrs) => {
    log(`SETSTAT ${at(path)}`);
    answer(reqId, () => setAttributes(at(path), attrs));
  });
  for (const [event, statOf] of [
    ["STAT", stat],
    ["LSTAT", lstat],
  ] as const) {
    sftp.on(event, (reqId: number, path: string) => {
      answer(reqId, async () => {
        sftp.attrs(reqId, attributes(await statOf(at(path))));
        return ANSWERED;
      });
    });
  }
  sftp.on("MKDIR", (reqId, path, attrs) => {
    log(`MKDIR ${at(path)}`);
    answer(reqId, async () => {
      await mkdir(at(path), { mode: (attrs as Partial<Attributes> | undefined)?.mode ?? 0o777 });
    });
  });
  sftp.on("RMDIR", (reqId, path) => answer(reqId, () => rmdir(at(path))));
  sftp.on("REMOVE", (reqId, path) => answer(reqId, () => rm(at(path))));
  sftp.on("RENAME", (reqId, from, to) => answer(reqId, () => rename(at(from), at(to))));
  sftp.on("REALPATH", (reqId, path) => {
    const full = at(path);
    sftp.name(reqId, [{ filename: full, longname: full, attrs: {} as Attributes }]);
  });
}

/** SFTP open flags as open(2)'s. */
function openFlags(flags: number): number {
  const read = (flags & OPEN_MODE.READ) !== 0;
  const write = (flags & (OPEN_MODE.WRITE | OPEN_MODE.APPEND)) !== 0;
  let out = read && write ? constants.O_RDWR : write ? constants.O_WRONLY : constants.O_RDONLY;
  if (flags & OPEN_MODE.APPEND) out |= constants.O_APPEND;
  if (flags & OPEN_MODE.CREAT) out |= constants.O_CREAT;
  if (flags & OPEN_MODE.TRUNC) out |= constants.O_TRUNC;
  if (flags & OPEN_MODE.EXCL) out |= constants.O_EXCL;
  return out;
}

function attributes(s: Stats): Attributes {
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    atime: Math.floor(s.atimeMs / 1000),
    mtime: Math.floor(s.mtimeMs / 1000),
  };
}

async function setAttributes(path: string, attrs: InputAttributes): Promise<void> {
  if (attrs.mode !== undefined) await chmod(path, Number(attrs.mode) & 0o7777);
  if (attrs.atime !== undefined && attrs.mtime !== undefined) await utimes(path, attrs.atime, attrs.mtime);
}

/** errno → SFTP status, as OpenSSH's sftp-server maps them. */
function statusOf(code: string | undefined): number {
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
    case "EBADF":
    case "ELOOP":
      return STATUS_CODE.NO_SUCH_FILE;
    case "EPERM":
    case "EACCES":
    case "EFAULT":
      return STATUS_CODE.PERMISSION_DENIED;
    case "ENAMETOOLONG":
    case "EINVAL":
      return STATUS_CODE.BAD_MESSAGE;
    case "ENOSYS":
      return STATUS_CODE.OP_UNSUPPORTED;
    default:
      return STATUS_CODE.FAILURE;
  }
}
