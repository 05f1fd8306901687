/**
 * File access for the workspace tools, on paths the boundary already resolved
 * (services/sandbox.ts). Kinds and sizes are checked on the opened descriptor, so
 * a file swapped meanwhile cannot slip through; a FIFO is opened non-blocking and
 * refused, never read; reads take only what they return; writes go to a temp file
 * in the same directory and are renamed over the target, so a hard link to a file
 * outside the workspace is replaced in the workspace, never written through.
 */
import { randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { ToolError } from './tool-types.ts'

const KINDS: [keyof Stats, string][] = [
  ['isFIFO', 'a FIFO'],
  ['isSocket', 'a socket'],
  ['isCharacterDevice', 'a character device'],
  ['isBlockDevice', 'a block device'],
  ['isSymbolicLink', 'a symbolic link'],
]

/** What a file is, in words: 'a FIFO', 'a socket' … */
function kindOf(s: Stats): string {
  for (const [test, name] of KINDS) if ((s[test] as () => boolean).call(s)) return name
  return 'not a regular file'
}

export const SPECIAL_RULE = 'it is not a regular file or directory'

/** `1.0 GB`, `512 KB`, `12 bytes`. */
export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MB`
  if (n >= 1024) return `${Math.round(n / 1024)} KB`
  return `${n} bytes`
}

/**
 * Opens an existing regular file for reading and checks it: a directory, FIFO,
 * socket or device is refused (ToolError naming the rule), and so is a file over
 * `maxBytes`. O_NONBLOCK keeps a FIFO from blocking the open; O_NOFOLLOW refuses a
 * symlink put in place of the resolved file.
 */
export async function openRegular(
  file: string,
  shown: string,
  maxBytes: number,
  what: 'read' | 'edit',
): Promise<{ handle: FileHandle; size: number }> {
  // Checked before the open (a socket cannot be opened at all) and again on the descriptor.
  const check = (s: Stats) => {
    if (s.isDirectory()) throw new ToolError(`${shown} is a directory; use list_files`)
    if (!s.isFile()) throw new ToolError(`path '${shown}' is refused: ${SPECIAL_RULE} (${kindOf(s)})`)
  }
  check(await lstat(file))
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW)
  try {
    const s = await handle.stat()
    check(s)
    if (s.size > maxBytes) {
      throw new ToolError(
        `path '${shown}' is refused: it is ${formatBytes(s.size)}, over the ${what} limit of ${formatBytes(maxBytes)} (maxReadBytes)`,
      )
    }
    return { handle, size: s.size }
  } catch (err) {
    await handle.close()
    throw err
  }
}

/** The lines of a read, as `read_file` returns them. */
export interface LineRead {
  /** The lines [from, end) that fit in the byte cap, joined with `\n`. */
  text: string
  /** Index after the last line returned. */
  end: number
  /** One line alone was longer than the cap: `text` is its head. */
  cutLine: boolean
  /** Lines in the file (a last line without `\n` counts), or null when the file goes on past what was counted. */
  total: number | null
  binary: boolean
}

const CHUNK = 64 * 1024
/** Once the lines to return are in hand, the rest of the file is only scanned (to count its lines) up to here. */
const COUNT_LIMIT = 4 * 1024 * 1024

/** The part of a FileHandle that readLines uses. */
export type Readable = Pick<FileHandle, 'read'>

/**
 * Reads lines [from, to) of an open file, at most `cap` bytes of them (at least
 * the head of the first one), counting the file's lines as it goes (up to
 * COUNT_LIMIT bytes once the lines are in hand). Holds one chunk and what it
 * returns, never the whole file. A NUL byte in the first 8 KB marks it binary.
 */
export async function readLines(handle: Readable, from: number, to: number, cap: number): Promise<LineRead> {
  const kept: Buffer[] = []
  let keptBytes = 0
  let current: Buffer[] = []
  let currentBytes = 0
  let line = 0
  let collecting = true
  let cutLine = false
  let end = from
  let sawPartial = false
  let position = 0
  const buffer = Buffer.alloc(CHUNK)

  const endLine = () => {
    if (collecting && line >= from && line < to) {
      const size = currentBytes + 1
      if (keptBytes + size <= cap) {
        kept.push(Buffer.concat(current))
        keptBytes += size
        end = line + 1
      } else {
        if (line === from) {
          kept.push(Buffer.concat(current).subarray(0, cap))
          cutLine = true
          end = line + 1
        }
        collecting = false
      }
    }
    if (line + 1 >= to) collecting = false
    current = []
    currentBytes = 0
    line++
  }
  const take = (part: Buffer) => {
    // Only a line that may be returned is kept, and of it no more than the cap (+1 to see it overflow).
    if (!collecting || line < from || line >= to) return
    const room = cap + 1 - currentBytes
    if (room <= 0) return
    const piece = Buffer.from(part.subarray(0, room))
    current.push(piece)
    currentBytes += piece.length
  }

  for (;;) {
    if (!collecting && position >= COUNT_LIMIT) {
      const text = cutLine ? kept[0]!.toString() : kept.map((b) => b.toString()).join('\n')
      return { text, end, cutLine, total: null, binary: false }
    }
    const { bytesRead } = await handle.read(buffer, 0, CHUNK, position)
    if (bytesRead === 0) break
    const chunk = buffer.subarray(0, bytesRead)
    if (position === 0 && chunk.subarray(0, 8192).includes(0)) {
      return { text: '', end: 0, cutLine: false, total: 0, binary: true }
    }
    position += bytesRead
    let at = 0
    for (;;) {
      const nl = chunk.indexOf(10, at)
      if (nl < 0) {
        if (at < chunk.length) {
          take(chunk.subarray(at))
          sawPartial = true
        }
        break
      }
      take(chunk.subarray(at, nl))
      endLine()
      sawPartial = false
      at = nl + 1
    }
  }
  if (sawPartial) endLine()
  const text = cutLine ? kept[0]!.toString() : kept.map((b) => b.toString()).join('\n')
  return { text, end, cutLine, total: line, binary: false }
}

/**
 * Replaces (or creates) `file` with `content`: written to a temp file beside it
 * (O_EXCL, so nothing there is followed or reused) and renamed over it. An existing
 * file keeps its mode; an existing directory, FIFO, socket or device is refused.
 */
export async function replaceFile(file: string, content: string, shown: string): Promise<void> {
  const existing = await lstat(file).catch(() => null)
  if (existing?.isDirectory()) throw new ToolError(`${shown} is a directory`)
  if (existing && !existing.isFile()) throw new ToolError(`path '${shown}' is refused: ${SPECIAL_RULE} (${kindOf(existing)})`)
  const dir = path.dirname(file)
  await mkdir(dir, { recursive: true })
  const temp = path.join(dir, `.${path.basename(file)}.loopstate-${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, existing ? existing.mode & 0o7777 : 0o666)
  try {
    try {
      await handle.writeFile(content)
      if (existing) await handle.chmod(existing.mode & 0o7777)
    } finally {
      await handle.close()
    }
    await rename(temp, file)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
}
