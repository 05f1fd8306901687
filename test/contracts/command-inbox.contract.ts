/**
 * The `CommandInbox` contract (adapters/inbox.ts), run against every implementation
 * (LangGraph checkpoint-validation style): `commandInboxContract('memory', make)`.
 *
 * The rule under test above all: a command is taken or withdrawn, never both.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { MAX_COMMAND_BYTES, type CommandInbox, type CommandTicket } from '../../adapters/inbox.ts'
import type { ControlEvent } from '../../machines/loop.types.ts'

/** A fresh, empty inbox; `cleanup` removes what it kept. */
export type MakeCommandInbox = () => Promise<{ inbox: CommandInbox; cleanup?: () => Promise<void> }>

const say = (text: string): ControlEvent => ({ type: 'loop.say', text })

/** Text that has to survive every encoding on the way: multi-byte, combining, bidi, escapes, a lone surrogate. */
export const UNICODE_TEXT =
  'héllo wörld — ünïcödé ✓ 日本語のテキスト 🚀 👩‍👩‍👧‍👦 e\u0301 \u202Eleft\u202C "quoted" \\back\\slash\\ ' +
  'line\nbreak\r\ntab\tnul\u0000 bell\u0007 \u2028\u2029 lone \ud800 end'

/** 60 KB of text that is not one repeated character (a truncation or a reordering shows), under the limit as JSON. */
export const TEXT_60_KB = (() => {
  let text = ''
  for (let i = 0; text.length < 60 * 1024; i++) text += `line ${i}: the quick brown fox jumps over the lazy dog ${i * 7919 % 1000}\n`
  return text.slice(0, 60 * 1024)
})()

export function commandInboxContract(name: string, make: MakeCommandInbox): void {
  async function setup(): Promise<CommandInbox> {
    const made = await make()
    if (made.cleanup) onTestFinished(made.cleanup)
    return made.inbox
  }

  describe(`CommandInbox contract: ${name}`, () => {
    it('starts empty: nothing waits, take returns [], an unknown ticket is neither withdrawn nor waiting', async () => {
      const inbox = await setup()
      expect(await inbox.waiting()).toEqual([])
      expect(await inbox.take('alpha')).toEqual([])
      expect(await inbox.withdraw({ name: 'alpha', id: 'no-such-id' })).toBe(false)
      expect(await inbox.waiting()).toEqual([])
    })

    it('send returns a ticket naming the loop, with an id of its own per command', async () => {
      const inbox = await setup()
      const a = await inbox.send('alpha', { type: 'loop.pause' })
      const b = await inbox.send('alpha', { type: 'loop.pause' })
      expect(a.name).toBe('alpha')
      expect(b.name).toBe('alpha')
      expect(typeof a.id).toBe('string')
      expect(a.id).not.toBe(b.id)
      expect(await inbox.taken(a)).toBe(false)
      expect(await inbox.taken(b)).toBe(false)
    })

    it('take returns every waiting command in the order sent, once', async () => {
      const inbox = await setup()
      const sent: ControlEvent[] = [
        { type: 'loop.pause' },
        say('first'),
        { type: 'loop.resume' },
        ...Array.from({ length: 40 }, (_, i) => say(`message ${i}`)),
        { type: 'loop.cancel' },
      ]
      // sent back to back: many in the same millisecond
      for (const event of sent) await inbox.send('alpha', event)
      expect(await inbox.take('alpha')).toEqual(sent)
      expect(await inbox.take('alpha')).toEqual([])
    })

    it('commands sent after a take come in the next take, in order', async () => {
      const inbox = await setup()
      await inbox.send('alpha', say('one'))
      expect(await inbox.take('alpha')).toEqual([say('one')])
      await inbox.send('alpha', say('two'))
      await inbox.send('alpha', say('three'))
      expect(await inbox.take('alpha')).toEqual([say('two'), say('three')])
    })

    it('after take, the command counts as taken and can no longer be withdrawn', async () => {
      const inbox = await setup()
      const ticket = await inbox.send('alpha', { type: 'loop.pause' })
      expect(await inbox.taken(ticket)).toBe(false)
      expect(await inbox.take('alpha')).toEqual([{ type: 'loop.pause' }])
      expect(await inbox.taken(ticket)).toBe(true)
      expect(await inbox.withdraw(ticket)).toBe(false)
      expect(await inbox.taken(ticket)).toBe(true)
    })

    it('after withdraw, take never returns the command, and a second withdraw says false', async () => {
      const inbox = await setup()
      const ticket = await inbox.send('alpha', say('never applied'))
      expect(await inbox.withdraw(ticket)).toBe(true)
      expect(await inbox.take('alpha')).toEqual([])
      expect(await inbox.withdraw(ticket)).toBe(false)
      expect(await inbox.take('alpha')).toEqual([])
    })

    it('withdrawing one command leaves the others, in order', async () => {
      const inbox = await setup()
      await inbox.send('alpha', say('a'))
      const b = await inbox.send('alpha', say('b'))
      await inbox.send('alpha', say('c'))
      expect(await inbox.withdraw(b)).toBe(true)
      expect(await inbox.take('alpha')).toEqual([say('a'), say('c')])
    })

    it('take racing withdraw: each command is taken or withdrawn, never both and never neither', async () => {
      const inbox = await setup()
      const tickets: CommandTicket[] = []
      for (let i = 0; i < 40; i++) tickets.push(await inbox.send('alpha', say(`m${i}`)))
      const even = tickets.filter((_, i) => i % 2 === 0)
      const odd = tickets.filter((_, i) => i % 2 === 1)
      const [withdrawnEven, taken, withdrawnOdd] = await Promise.all([
        Promise.all(even.map((t) => inbox.withdraw(t))),
        inbox.take('alpha'),
        Promise.all(odd.map((t) => inbox.withdraw(t))),
      ])
      const withdrawn = new Map<string, boolean>()
      even.forEach((t, i) => withdrawn.set(t.id, withdrawnEven[i]!))
      odd.forEach((t, i) => withdrawn.set(t.id, withdrawnOdd[i]!))
      const takenTexts = taken.map((e) => (e as { text: string }).text)
      expect(new Set(takenTexts).size).toBe(takenTexts.length)
      tickets.forEach((t, i) => {
        const wasTaken = takenTexts.includes(`m${i}`)
        expect({ i, wasTaken, withdrawn: withdrawn.get(t.id) }).toEqual({ i, wasTaken, withdrawn: !wasTaken })
      })
      // taken ones in sent order
      expect(takenTexts).toEqual(tickets.map((_, i) => `m${i}`).filter((t) => takenTexts.includes(t)))
      for (const [i, t] of tickets.entries()) {
        if (takenTexts.includes(`m${i}`)) expect(await inbox.taken(t)).toBe(true)
      }
      expect(await inbox.take('alpha')).toEqual([])
    })

    it('waiting() lists every loop with commands waiting, and only those', async () => {
      const inbox = await setup()
      await inbox.send('beta', { type: 'loop.pause' })
      await inbox.send('alpha', say('x'))
      await inbox.send('alpha', say('y'))
      expect((await inbox.waiting()).sort()).toEqual(['alpha', 'beta'])
    })

    it('waiting() no longer lists a loop once its commands were taken or withdrawn', async () => {
      const inbox = await setup()
      const ticket = await inbox.send('beta', { type: 'loop.pause' })
      await inbox.send('alpha', say('x'))
      await inbox.send('gamma', say('z'))
      expect(await inbox.take('alpha')).toEqual([say('x')])
      expect(await inbox.withdraw(ticket)).toBe(true)
      expect(await inbox.waiting()).toEqual(['gamma'])
      expect(await inbox.take('gamma')).toEqual([say('z')])
      expect(await inbox.waiting()).toEqual([])
    })

    it('separate loops have separate inboxes', async () => {
      const inbox = await setup()
      const a1 = await inbox.send('alpha', say('for alpha 1'))
      const b1 = await inbox.send('beta', say('for beta'))
      const a2 = await inbox.send('alpha', { type: 'loop.cancel' })
      expect(await inbox.take('alpha')).toEqual([say('for alpha 1'), { type: 'loop.cancel' }])
      expect(await inbox.taken(a1)).toBe(true)
      expect(await inbox.taken(a2)).toBe(true)
      expect(await inbox.taken(b1)).toBe(false)
      expect(await inbox.take('gamma')).toEqual([])
      // a ticket of one loop does not reach a command of another with the same id
      expect(await inbox.withdraw({ name: 'gamma', id: b1.id })).toBe(false)
      expect(await inbox.take('beta')).toEqual([say('for beta')])
    })

    it('a say text comes back exactly: unicode of every kind', async () => {
      const inbox = await setup()
      await inbox.send('alpha', say(UNICODE_TEXT))
      await inbox.send('alpha', say(''))
      const [got, empty] = await inbox.take('alpha')
      expect(got).toEqual(say(UNICODE_TEXT))
      expect((got as { text: string }).text === UNICODE_TEXT).toBe(true)
      expect(empty).toEqual(say(''))
    })

    it('a say text of 60 KB comes back exactly', async () => {
      const inbox = await setup()
      expect(TEXT_60_KB.length).toBe(60 * 1024)
      expect(Buffer.byteLength(JSON.stringify(say(TEXT_60_KB)))).toBeLessThanOrEqual(MAX_COMMAND_BYTES)
      const ticket = await inbox.send('alpha', say(TEXT_60_KB))
      const taken = await inbox.take('alpha')
      expect(taken).toHaveLength(1)
      expect((taken[0] as { text: string }).text === TEXT_60_KB).toBe(true)
      expect(await inbox.taken(ticket)).toBe(true)
    })

    it('what is taken is what was sent, not what the sender did to its object afterwards', async () => {
      const inbox = await setup()
      const event = { type: 'loop.say' as const, text: 'original' }
      await inbox.send('alpha', event)
      event.text = 'changed'
      expect(await inbox.take('alpha')).toEqual([say('original')])
    })

    it('concurrent sends from many promises all arrive, each once', async () => {
      const inbox = await setup()
      const names = ['alpha', 'beta', 'gamma']
      const sends = Array.from({ length: 90 }, (_, i) => inbox.send(names[i % 3]!, say(`c${i}`)))
      const tickets = await Promise.all(sends)
      expect(new Set(tickets.map((t) => `${t.name}/${t.id}`)).size).toBe(90)
      expect((await inbox.waiting()).sort()).toEqual(names)
      for (const [k, n] of names.entries()) {
        const texts = (await inbox.take(n)).map((e) => (e as { text: string }).text)
        const expected = Array.from({ length: 90 }, (_, i) => i).filter((i) => i % 3 === k).map((i) => `c${i}`)
        expect([...texts].sort()).toEqual([...expected].sort())
      }
      for (const t of tickets) expect(await inbox.taken(t)).toBe(true)
      for (const n of names) expect(await inbox.take(n)).toEqual([])
    })

    it('whatever send accepts, take returns: a say over the size limit is refused at send or delivered', async () => {
      const inbox = await setup()
      const big = 'x'.repeat(MAX_COMMAND_BYTES + 1024)
      const problems: string[] = []
      const sent = await inbox.send('alpha', say(big)).then(
        () => true,
        () => false,
      )
      const taken = await inbox.take('alpha', (m) => problems.push(m))
      if (sent) {
        expect(problems).toEqual([])
        expect(taken).toHaveLength(1)
        expect((taken[0] as { text: string }).text === big).toBe(true)
      } else {
        expect(taken).toEqual([])
      }
    })

    it('send refuses an event that is not a command (take would never return it)', async () => {
      const inbox = await setup()
      await expect(inbox.send('alpha', { type: 'loop.explode' } as unknown as ControlEvent)).rejects.toThrow()
      await expect(inbox.send('alpha', { type: 'loop.say', text: 42 } as unknown as ControlEvent)).rejects.toThrow()
      expect(await inbox.take('alpha', () => {})).toEqual([])
    })
  })
}
