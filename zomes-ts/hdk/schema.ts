/**
 * A small, deterministic JSON-schema subset for entry validation inside integrity zomes.
 * It is bundled into each zome (so it is part of the DNA hash) and returns the first problem
 * found as a readable path (`capabilities.compute.cpu_cores must be a number`), or null.
 */
export type Schema =
  | { type: 'string', enum?: readonly string[], maxLength?: number, minLength?: number, pattern?: RegExp, nullable?: boolean }
  | { type: 'number', minimum?: number, maximum?: number, integer?: boolean, nullable?: boolean }
  | { type: 'boolean', nullable?: boolean }
  | { type: 'array', items: Schema, maxItems?: number, nullable?: boolean }
  | { type: 'object', properties: Record<string, Schema>, required?: readonly string[], nullable?: boolean }

export function checkSchema (value: unknown, schema: Schema, path = 'entry'): string | null {
  if (value === null || value === undefined) {
    if (schema.nullable === true) return null
    return `${path} is required`
  }
  switch (schema.type) {
    case 'string': {
      if (typeof value !== 'string') return `${path} must be a string`
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return `${path} must be at most ${schema.maxLength} characters`
      if (schema.minLength !== undefined && value.length < schema.minLength) return `${path} must be at least ${schema.minLength} characters`
      if (schema.enum !== undefined && !schema.enum.includes(value)) return `${path} must be one of ${schema.enum.join(', ')}`
      if (schema.pattern !== undefined && !schema.pattern.test(value)) return `${path} is malformed`
      return null
    }
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${path} must be a finite number`
      if (schema.integer === true && !Number.isInteger(value)) return `${path} must be an integer`
      if (schema.minimum !== undefined && value < schema.minimum) return `${path} must be at least ${schema.minimum}`
      if (schema.maximum !== undefined && value > schema.maximum) return `${path} must be at most ${schema.maximum}`
      return null
    }
    case 'boolean':
      return typeof value === 'boolean' ? null : `${path} must be a boolean`
    case 'array': {
      if (!Array.isArray(value)) return `${path} must be an array`
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${path} must have at most ${schema.maxItems} items`
      for (let i = 0; i < value.length; i++) {
        const problem = checkSchema(value[i], schema.items, `${path}[${i}]`)
        if (problem !== null) return problem
      }
      return null
    }
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) return `${path} must be an object`
      const obj = value as Record<string, unknown>
      // own properties only on both sides: a field named after an Object.prototype member
      // (`constructor`, `toString`, `__proto__`) is unknown like any other
      for (const key of Object.keys(obj)) {
        if (!Object.hasOwn(schema.properties, key)) return `${path}.${key} is not a known field`
      }
      for (const [key, sub] of Object.entries(schema.properties)) {
        const present = Object.hasOwn(obj, key) && obj[key] !== undefined
        if (!present) {
          if (schema.required?.includes(key) === true) return `${path}.${key} is required`
          continue
        }
        const problem = checkSchema(obj[key], sub, `${path}.${key}`)
        if (problem !== null) return problem
      }
      return null
    }
  }
}
