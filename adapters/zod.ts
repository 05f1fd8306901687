/**
 * loopstate's schemas use `zod/mini` (the tree-shakable API; import it as
 * `import * as z from 'zod/mini'` beside this module): the classic `zod` API bundles
 * ~750 KB and costs ~60 ms and ~10 MB of RSS to load in every process; what the
 * schemas use of zod/mini is ~40 KB. zod/mini has no messages until a locale is
 * configured (every error would read "Invalid input"): importing this module
 * configures English.
 */
import { config } from 'zod/mini'
import { en } from 'zod/v4/locales'

config(en())

export type { $ZodIssue as ZodIssue } from 'zod/v4/core'
