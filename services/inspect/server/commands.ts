/**
 * The viewer's controls: `POST /api/loops/<name>/commands` with a JSON body
 * `{ "type": "pause" | "resume" | "cancel" | "say", "text"?: string }`, sent
 * through the LoopClient, as `loopstate pause|resume|cancel|say` sends them
 * (scripts/cli/control.ts): to the loop's owner, which acknowledges it, or applied
 * to the store when no process owns the loop. `resume` of a loop no process owns
 * is not driven here (a viewer runs no loops): the answer says to run
 * `loopstate resume <name>`.
 *
 * Who may send one: services/inspect/viewer-access.ts (`checkCommandAccess`): the
 * viewer's own origin, with its command token, a random one per run that the page
 * gets only inside the page itself (`withCommandToken`, a `<meta>` of the served
 * index.html). Then the body: at most `COMMAND_LIMITS.bodyBytes`, one valid command.
 * Whatever is refused is answered with a status and `{ ok: false, error }` before
 * anything reaches the loop.
 */
import type { IncomingMessage } from 'node:http'
import type { ControlEvent } from '../../../machines/loop.types.ts'
import { ClientError, ownerText, type ClientErrorCode, type LoopClient, type SendResult } from '../../client.ts'
import { checkCommandAccess, type AccessPolicy } from '../viewer-access.ts'

export const COMMAND_LIMITS = {
  /** The largest body taken, bytes. */
  bodyBytes: 16 * 1024,
  /** The longest `say` text, characters (after trimming). */
  sayChars: 4000,
}

export type CommandKind = 'pause' | 'resume' | 'cancel' | 'say'
const KINDS: readonly string[] = ['pause', 'resume', 'cancel', 'say'] satisfies CommandKind[]

export interface CommandDeps {
  /** The viewer's access policy (its port set once it listens). */
  policy: AccessPolicy
  /** The command token of this run of the viewer. */
  token: string
  client: Pick<LoopClient, 'send'>
  /** The data dir shown (absolute), for the `loopstate resume` line. */
  dataDir: string
  /** One line per command taken, with what became of it. */
  log?: (line: string) => void
}

/** What the page is answered. */
export type CommandReply =
  /** Done: by the loop's owner (`owner`), on the store (`store`), or nothing to do (`unchanged`). */
  | { ok: true; result: 'owner' | 'store' | 'unchanged'; message: string; status: string | null }
  /** Refused (nothing reached the loop), or (`unowned`) a resume the viewer cannot do: `command` does it. */
  | { ok: false; code: ClientErrorCode | 'unowned' | 'refused'; error: string; command?: string }

export interface CommandAnswer {
  status: number
  body: CommandReply
}

/** Statuses of the client's refusals. */
const REFUSED: Record<ClientErrorCode, number> = { invalid: 400, not_found: 404, ended: 409, not_paused: 409, withdrawn: 504 }

/** Answers a command request for loop `name` (whose form the route checked). */
export async function handleCommand(deps: CommandDeps, name: string, req: IncomingMessage): Promise<CommandAnswer> {
  const access = checkCommandAccess(deps.policy, deps.token, { url: req.url ?? '/', headers: req.headers })
  if (!access.ok) return refused(access.status, access.error)
  const body = await readBody(req, COMMAND_LIMITS.bodyBytes)
  if (body === null) return refused(413, `inspect: a command body is at most ${COMMAND_LIMITS.bodyBytes} bytes`)
  const parsed = parseCommand(body)
  if ('error' in parsed) return refused(400, `inspect: ${parsed.error}`)
  const { kind, event } = parsed

  let result: SendResult
  try {
    result = await deps.client.send(name, event, kind === 'resume' ? { unowned: 'return' } : {})
  } catch (e) {
    if (!(e instanceof ClientError)) throw e
    deps.log?.(`inspect: ${kind} of loop ${name} refused: ${e.message}`)
    return { status: REFUSED[e.code], body: { ok: false, code: e.code, error: `cannot ${kind}: ${e.message}` } }
  }
  const answer = answerOf(kind, name, result, deps.dataDir)
  deps.log?.(`inspect: ${kind} of loop ${name} from the page: ${answer.body.ok ? answer.body.message : answer.body.error}`)
  return answer
}

/** The command in a body, or why it is none. */
export function parseCommand(text: string): { kind: CommandKind; event: ControlEvent } | { error: string } {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { error: 'a command is JSON: {"type": "pause" | "resume" | "cancel" | "say", "text"?: "…"}' }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { error: 'a command is a JSON object {type, text?}' }
  const extra = Object.keys(json).find((k) => k !== 'type' && k !== 'text')
  if (extra !== undefined) return { error: `a command has no field ${JSON.stringify(extra).slice(0, 40)}` }
  const { type, text: said } = json as { type?: unknown; text?: unknown }
  if (typeof type !== 'string' || !KINDS.includes(type)) {
    return { error: `unknown command ${JSON.stringify(type)?.slice(0, 40) ?? 'undefined'}: pause, resume, cancel or say` }
  }
  const kind = type as CommandKind
  if (kind !== 'say') {
    if (said !== undefined) return { error: `${kind} takes no text` }
    return { kind, event: { type: `loop.${kind}` } }
  }
  if (typeof said !== 'string') return { error: 'say: the text is missing' }
  const message = said.trim()
  if (message === '') return { error: 'say: the message is empty' }
  if (message.length > COMMAND_LIMITS.sayChars) return { error: `say: the message is ${message.length} characters, over ${COMMAND_LIMITS.sayChars}` }
  return { kind, event: { type: 'loop.say', text: message } }
}

/** `index.html` with the command token in its `<meta name="loopstate-token">` (added before `</head>` if it has none). */
export function withCommandToken(html: string, token: string): string {
  const meta = `<meta name="loopstate-token" content="${token}">`
  const placeholder = /<meta name="loopstate-token" content="">/
  if (placeholder.test(html)) return html.replace(placeholder, meta)
  return html.replace('</head>', `${meta}\n</head>`)
}

/** The answer to a command the client took, in the words of `loopstate` (scripts/cli/control.ts). */
function answerOf(kind: CommandKind, name: string, result: SendResult, dataDir: string): CommandAnswer {
  const statusOf = ({ status, reason }: { status: string; reason: string | null }) => `${status}${reason && reason !== status ? ` (${reason})` : ''}`
  const ok = (via: 'owner' | 'store' | 'unchanged', message: string, status: string | null): CommandAnswer => ({
    status: 200,
    body: { ok: true, result: via, message, status },
  })
  switch (result.via) {
    case 'unchanged':
      return ok('unchanged', `loop ${name} is already paused`, result.record.status)
    case 'unowned': {
      const command = `loopstate resume ${name} --data ${shellWord(dataDir)}`
      return {
        status: 409,
        body: {
          ok: false,
          code: 'unowned',
          error: `cannot resume here: no process runs loop ${name} (${result.record.status}) and the viewer runs no loops; resume it with: ${command}`,
          command,
        },
      }
    }
    case 'store':
      if (kind === 'say') {
        return ok('store', `message queued for loop ${name} (no process runs it; ${result.record.status}): its next prompt includes it`, result.record.status)
      }
      return ok('store', `loop ${name} ${statusOf(result.record)} (no process runs it: applied to the store)`, result.record.status)
    case 'owner': {
      const owner = ownerText(result.owner)
      if (kind === 'say') return ok('owner', `message delivered to loop ${name} (${owner}): its next prompt includes it`, null)
      if (result.shown && result.record) return ok('owner', `loop ${name} ${statusOf(result.record)}`, result.record.status)
      return ok('owner', `loop ${name}: ${kind} taken by its owner (${owner}); its record does not show it yet`, null)
    }
  }
}

/** Reads the body, or null once it is over `limit` bytes (what is left is read and dropped). */
function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  const declared = Number(req.headers['content-length'])
  // unread, it is dropped by the server once the answer is sent
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(null)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) return void chunks.push(chunk)
      req.off('data', onData).off('end', onEnd).off('error', onError)
      req.resume()
      resolve(null)
    }
    const onEnd = () => resolve(Buffer.concat(chunks).toString('utf8'))
    const onError = (err: Error) => reject(err)
    req.on('data', onData).on('end', onEnd).on('error', onError)
  })
}

function refused(status: number, error: string): CommandAnswer {
  return { status, body: { ok: false, code: 'refused', error } }
}

/** `s` as one word of a POSIX shell (quoted when it has to be). */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}
