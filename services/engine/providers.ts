/** The model providers of the engine's loops: one per loop and model spec, built by the scheme's factory. */
import { parseModelSpec, type ModelProvider, type ProviderFactory } from '../../adapters/model-provider.ts'
import type { LoopConfig } from '../../machines/loop.types.ts'
import { EngineError } from './types.ts'

export class ProviderCache {
  readonly #entries = new Map<string, { provider: ModelProvider; model: string }>()

  constructor(private readonly factories: Record<string, ProviderFactory>) {}

  /** The provider of `spec` for a loop, and the model name it takes. Throws for an unknown scheme. */
  get(loopName: string, spec: string): { provider: ModelProvider; model: string } {
    const key = `${loopName}\u0000${spec}`
    let entry = this.#entries.get(key)
    if (!entry) {
      const { scheme, model } = parseModelSpec(spec)
      const factory = this.factories[scheme]
      if (!factory) {
        throw new EngineError(
          `model: unknown scheme '${scheme}' in '${spec}' (known: ${Object.keys(this.factories).join(', ')})`,
        )
      }
      entry = { provider: factory(model, loopName), model }
      this.#entries.set(key, entry)
    }
    return entry
  }

  /** Builds the providers of every model a loop may call; throws for one no factory serves. */
  require(loopName: string, config: Pick<LoopConfig, 'models' | 'auditorModels'>): void {
    for (const model of new Set([...config.models, ...config.auditorModels])) this.get(loopName, model)
  }

  forget(loopName: string): void {
    for (const key of this.#entries.keys()) if (key.startsWith(`${loopName}\u0000`)) this.#entries.delete(key)
  }
}
