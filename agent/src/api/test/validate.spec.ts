import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { InvalidRequestError } from '../../inference/types.ts'
import { issuePath, parseInput } from '../validate.ts'

const schema = z.object({
  resource_type: z.enum(['compute', 'inference']),
  requirements: z.object({ cpu_cores: z.number().positive().optional() }).strict(),
  tags: z.array(z.string()).optional()
}).strict()

describe('parseInput', () => {
  it('returns the parsed value', () => {
    expect(parseInput(schema, { resource_type: 'compute', requirements: { cpu_cores: 2 } })).toEqual({ resource_type: 'compute', requirements: { cpu_cores: 2 } })
  })

  it('names the first problem by its path', () => {
    const err = (() => { try { parseInput(schema, { resource_type: 'compute', requirements: { cpu_cores: 'two' } }) } catch (e) { return e } })()
    expect(err).toBeInstanceOf(InvalidRequestError)
    expect((err as InvalidRequestError).param).toBe('requirements.cpu_cores')
    expect((err as Error).message).toMatch(/^requirements\.cpu_cores: /)
  })

  it('names an unknown key, nested or not', () => {
    expect(() => parseInput(schema, { resource_type: 'compute', requirements: {}, extra: 1 })).toThrow(/^extra is not a known field$/)
    expect(() => parseInput(schema, { resource_type: 'compute', requirements: { ram: 1 } })).toThrow(/^requirements\.ram is not a known field$/)
  })

  it('names the value itself when it is not an object', () => {
    const err = (() => { try { parseInput(schema, [1], 'arguments') } catch (e) { return e } })() as InvalidRequestError
    expect(err.param).toBe('arguments')
  })

  it('writes array indexes in brackets', () => {
    expect(issuePath(['tags', 2, 'x'])).toBe('tags[2].x')
  })
})
