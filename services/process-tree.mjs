/**
 * The processes of one run_command call, found and killed through /proc (Linux).
 * Used by the supervisor (services/run-supervisor.mjs), and by the engine itself
 * (services/run-command.ts) when a supervisor is gone before its command.
 *
 * A process is the command's when it is in the command's session or process group
 * (the command is started detached: it leads both), when its environment holds
 * LOOPSTATE_RUN_ID=<the call's random id> (inherited by default, also by a grandchild
 * that called setsid and was orphaned; the id is no secret), when it was recorded as
 * such by an earlier `track()`, or when it descends from one of those in the
 * parent-pid tree as it is now.
 *
 * `killAll()` first stops (SIGSTOP) every such process until a scan finds no new one
 * and every one has stopped, so that none can fork away meanwhile (a stopped parent
 * keeps its children), then SIGKILLs them all and scans again until none is alive (a
 * zombie counts as dead). Synchronous, bounded by a deadline.
 *
 * Elsewhere than Linux there is no /proc: only the command's process group is killed,
 * and a process that left it survives.
 *
 * Plain JavaScript: the supervisor is run by node without a TypeScript loader.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'

export const RUN_ID_VARIABLE = 'LOOPSTATE_RUN_ID'
export const LINUX = process.platform === 'linux' && existsSync('/proc/self/stat')

/** One process's state, parent, group, session and start time (from /proc/PID/stat); null when it is gone. */
export function readStat(pid) {
  let text
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return null
  }
  // the command name (field 2) is in parentheses and may hold spaces or parentheses
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { pid, state: f[0], ppid: Number(f[1]), pgrp: Number(f[2]), sid: Number(f[3]), start: f[19] }
}

/** Every process of the machine (that /proc shows this user). */
export function scan() {
  let names
  try {
    names = readdirSync('/proc')
  } catch {
    return []
  }
  const procs = []
  for (const name of names) {
    const c = name.charCodeAt(0)
    if (c < 48 || c > 57) continue
    const p = readStat(Number(name))
    if (p) procs.push(p)
  }
  return procs
}

const dead = (p) => p.state === 'Z' || p.state === 'X'

function signal(pid, sig) {
  try {
    process.kill(pid, sig)
  } catch {
    // gone already, or not ours to signal
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

export class ProcessTree {
  /**
   * @param {string} runId the call's id, in the command's environment as RUN_ID_VARIABLE
   * @param {number[]} exclude pids never counted (the supervisor, the engine)
   */
  constructor(runId, exclude) {
    this.needle = Buffer.from(`${RUN_ID_VARIABLE}=${runId}\0`)
    this.exclude = new Set([0, 1, ...exclude])
    /** The command's pid, which leads its session and process group; 0 before it runs. */
    this.leader = 0
    /** pid → start time of every process found to be the command's. */
    this.tracked = new Map()
    /** `${pid}:${start}` → whether that process's environment holds the id. */
    this.markedCache = new Map()
  }

  setLeader(pid) {
    this.leader = pid
    const p = LINUX ? readStat(pid) : null
    if (p) this.tracked.set(pid, p.start)
  }

  marked(p) {
    const key = `${p.pid}:${p.start}`
    let hit = this.markedCache.get(key)
    if (hit === undefined) {
      try {
        hit = readFileSync(`/proc/${p.pid}/environ`).includes(this.needle)
      } catch {
        hit = false
      }
      this.markedCache.set(key, hit)
    }
    return hit
  }

  /** The command's processes among `procs`; recorded, so that a later orphan of theirs is still known. */
  ours(procs) {
    const found = new Map()
    const children = new Map()
    for (const p of procs) {
      if (this.exclude.has(p.pid)) continue
      const siblings = children.get(p.ppid)
      if (siblings) siblings.push(p)
      else children.set(p.ppid, [p])
      const inGroup = this.leader !== 0 && (p.sid === this.leader || p.pgrp === this.leader)
      if (inGroup || this.tracked.get(p.pid) === p.start || this.marked(p)) found.set(p.pid, p)
    }
    const queue = [...found.values()]
    while (queue.length > 0) {
      const parent = queue.pop()
      for (const child of children.get(parent.pid) ?? []) {
        if (found.has(child.pid)) continue
        found.set(child.pid, child)
        queue.push(child)
      }
    }
    for (const p of found.values()) this.tracked.set(p.pid, p.start)
    return [...found.values()]
  }

  /** Records the command's processes as they are now (cheap enough to poll). */
  track() {
    if (LINUX) this.ours(scan())
  }

  /** Kills every process of the command (see the header). */
  killAll(deadlineMs = 5_000) {
    if (this.leader !== 0) signal(-this.leader, 'SIGKILL')
    if (!LINUX) return
    const deadline = Date.now() + deadlineMs
    const stopped = new Map()
    for (;;) {
      let fresh = 0
      for (const p of this.ours(scan())) {
        if (dead(p) || stopped.has(p.pid)) continue
        signal(p.pid, 'SIGSTOP')
        stopped.set(p.pid, p.start)
        fresh++
      }
      const settling = [...stopped].some(([pid, start]) => {
        const p = readStat(pid)
        return p !== null && p.start === start && !dead(p) && p.state !== 'T' && p.state !== 't'
      })
      if ((fresh === 0 && !settling) || Date.now() > deadline) break
      if (fresh === 0) sleepSync(1)
    }
    for (const [pid, start] of stopped) if (readStat(pid)?.start === start) signal(pid, 'SIGKILL')
    for (;;) {
      const left = this.ours(scan()).filter((p) => !dead(p))
      if (left.length === 0 || Date.now() > deadline) break
      for (const p of left) signal(p.pid, 'SIGKILL')
      sleepSync(5)
    }
  }
}
