/**
 * Secret values for the redaction tests, generated per run (no test can pass by
 * knowing them), and the check that no piece of one is left in a text.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'

export const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** `n` random characters of `alphabet`. */
export function random(n: number, alphabet = ALNUM): string {
  let out = ''
  for (const b of randomBytes(n)) out += alphabet[b % alphabet.length]
  return out
}

/** Every `size`-character piece of `secret` that occurs in `text`. */
export function pieces(text: string, secret: string, size = 8): string[] {
  const found: string[] = []
  for (let i = 0; i + size <= secret.length; i++) {
    const piece = secret.slice(i, i + size)
    if (text.includes(piece)) found.push(piece)
  }
  return found
}

export function rsaPem(type: 'pkcs1' | 'pkcs8'): string {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type, format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey
}

export function ecPem(): string {
  return generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'sec1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey
}

/** An OpenSSH private key file: its fixed preamble, then key material, base64 in 70-character lines. */
export function openSshKey(): string {
  const preamble = Buffer.from('openssh-key-v1\0\0\0\0\x04none\0\0\0\x04none\0\0\0\0\0\0\0\x01\0\0\x01\x17\0\0\0\x07ssh-rsa')
  const body = Buffer.concat([preamble, randomBytes(1600)]).toString('base64').match(/.{1,70}/g)!
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`
}

/** The base64 body lines of a key file (without BEGIN/END). */
export function keyLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'))
}

/**
 * The secret part of a key's base64: all of it but the OpenSSH preamble line (the
 * same `openssh-key-v1 none none` in every key file).
 */
export function keyBody(pem: string): string {
  const body = keyLines(pem).join('')
  return body.startsWith('b3BlbnNzaC1rZXktdjE') ? body.slice(70) : body
}
