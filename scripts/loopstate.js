#!/usr/bin/env node
// The `loopstate` bin: registers tsx so that Node runs the TypeScript CLI as is,
// with the project's tsconfig wherever it is started from.
import { fileURLToPath } from 'node:url'
import { register } from 'tsx/esm/api'

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) })
await import('./cli.ts')
