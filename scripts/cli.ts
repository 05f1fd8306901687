/**
 * The `loopstate` CLI entry (bin: scripts/loopstate.js; bundled by scripts/build.mjs):
 * runs scripts/cli/main.ts on the process's arguments and exits with its code. The
 * exit is explicit: an inspector socket or a viewer left open must not keep it alive.
 */
import { main } from './cli/main.ts'

main(process.argv, {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  stdout: process.stdout,
}).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  },
)
