/**
 * The package's main entry (`import … from 'loopstate'`): the engine that runs
 * loops, the client that watches and commands them from another process, and the
 * types of what they take and give. Re-exports only; the other entries are
 * `loopstate/stores` (adapters/stores.ts), `loopstate/providers`
 * (adapters/providers.ts) and `loopstate/inspector` (services/inspector.ts).
 */
export { createEngine, Engine, EngineError } from './engine.ts'
export type { ContinueOverrides, EngineOptions, ForkOptions, LoopHandle, LoopTaskSpec, StartOptions } from './engine.ts'
export { ConfigError } from './config.ts'
export type { LoopOptions } from './config.ts'
export { ClientError, LoopClient, RemoveRefused } from './client.ts'
export type { ClientErrorCode, LoopClientOptions, SendOptions, SendResult } from './client.ts'
export type { LoopDetail, LoopView } from './views.ts'
export type {
  AuditRecord,
  Budget,
  CheckConfig,
  CheckResult,
  ControlEvent,
  FinalStatus,
  Finding,
  LoopConfig,
  LoopError,
  LoopKind,
  LoopOutput,
  LoopReason,
  LoopStatus,
  ModelPrice,
  Phase,
  RunCommandConfig,
  Severity,
  Usage,
  UsageTotals,
} from '../machines/loop.types.ts'
