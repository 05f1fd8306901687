/** Types of services/process-tree.mjs (plain JavaScript, run by the supervisor without a TypeScript loader). */
export declare const RUN_ID_VARIABLE: 'LOOPSTATE_RUN_ID'
export declare const LINUX: boolean

export interface ProcStat {
  pid: number
  state: string
  ppid: number
  pgrp: number
  sid: number
  start: string
}

export declare function readStat(pid: number): ProcStat | null
export declare function scan(): ProcStat[]

export declare class ProcessTree {
  constructor(runId: string, exclude: number[])
  leader: number
  setLeader(pid: number): void
  ours(procs: ProcStat[]): ProcStat[]
  track(): void
  killAll(deadlineMs?: number): void
}
