/**
 * `loopstate/providers`: the model provider contract and the providers that ship
 * with loopstate. A provider is registered by scheme with
 * `createEngine({ providers: { <scheme>: factory } })`; a loop names its models as
 * `<scheme>:<model>`. Re-exports only.
 */

// The contract
export { abortedError, parseModelSpec, ProviderError } from './model-provider.ts'
export type { ChatMessage, ChatRequest, ChatResponse, ChatUsage, ModelProvider, ProviderFactory, Role, ToolCall, ToolSpec } from './model-provider.ts'

// scripted:<file> (built into every engine): deterministic replay of a scenario file
export { createScriptedProvider, createScriptedProviderSync, ScriptedProvider, scriptedFactory } from './scripted-provider.ts'
export type { CallLog } from './scripted-provider.ts'
export { loadScenario, parseScenario, parseScenarioText, SCENARIO_ERRORS, ScenarioError } from './scenario.ts'
export type { Scenario, ScenarioEntry, ScenarioErrorCode } from './scenario.ts'

// ollama:<model>: a model on an Ollama server
export { classifyOllamaError, DEFAULT_OLLAMA_HOST, normalizeOllamaHost, OllamaProvider, ollamaFactory, resolveOllamaHost } from './ollama-provider.ts'
export type { OllamaModelInfo, OllamaProviderOptions } from './ollama-provider.ts'

// openai:<model> and its presets (openrouter:, llamacpp:, …): any OpenAI-compatible server
export { DEFAULT_OPENAI_CONTEXT_LENGTH, listedContextLength, OpenAIProvider, openaiFactory } from './openai-provider.ts'
export type { OpenAIProviderOptions } from './openai-provider.ts'
export { displayURL, normalizeBaseURL, OPENAI_PRESETS, resolveOpenAI } from './openai-config.ts'
export type { OpenAIConfig, OpenAIPreset, OpenAIScheme, ResolvedOpenAI } from './openai-config.ts'
export { classifyOpenAIError, retryAfterMs } from './openai-errors.ts'

// A provider module of the user's (`--provider ./file.js`): loaded, and every answer checked
export { loadProviderModule, ProviderModuleError } from './provider-module.ts'
export type { LoadProviderOptions, ProviderModule } from './provider-module.ts'
