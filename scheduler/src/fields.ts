/**
 * Boundary validation shared by the scheduler's policy parsers (`policy.ts`, `compute-policy.ts`):
 * each helper returns the checked value or throws an `InvalidPolicyError` naming the dotted path
 * of the field at fault.
 */
import { InvalidPolicyError } from './errors.ts'

export type Obj = Record<string, unknown>

export function fail (field: string, message: string): never {
  throw new InvalidPolicyError(`${field} ${message}`, { field })
}

export function isObject (value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function join (path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

/** The object at `path`, or an empty one when absent (every field then takes its default). */
export function section (value: unknown, path: string, known: readonly string[]): Obj {
  if (value === undefined) return {}
  if (!isObject(value)) fail(path, 'must be an object')
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(join(path, key), 'is not a known field')
  }
  return value
}

export function str (value: unknown, field: string, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || value.trim() === '') fail(field, 'must be a non-empty string')
  return value
}

export function bool (value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') fail(field, 'must be a boolean')
  return value
}

export function positive (value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(field, 'must be a number > 0')
  return value
}

export function isInt (value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
}
