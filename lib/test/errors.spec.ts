import { describe, expect, it } from 'vitest'
import { FlexnodeError, toWireError } from '../errors.ts'

class RoomFullError extends FlexnodeError {
  static override readonly name = 'RoomFullError'
  readonly room: string
  readonly seats: number
  readonly hint?: string

  constructor (room: string, seats: number) {
    super(`room ${room} has no free seat of ${seats}`, { cause: new Error('inner') })
    this.room = room
    this.seats = seats
  }
}

describe('FlexnodeError', () => {
  it('takes its instance name from the subclass\'s static name', () => {
    const err = new RoomFullError('a', 3)
    expect(err.name).toBe('RoomFullError')
    expect(err).toBeInstanceOf(FlexnodeError)
    expect(err).toBeInstanceOf(Error)
    expect(new FlexnodeError('x').name).toBe('FlexnodeError')
  })

  it('lists its structured fields without name, message, stack, cause or unset fields', () => {
    const err = new RoomFullError('a', 3)
    expect(err.fields).toEqual({ room: 'a', seats: 3 })
    expect(JSON.parse(JSON.stringify(err))).toEqual({ name: 'RoomFullError', message: 'room a has no free seat of 3', fields: { room: 'a', seats: 3 } })
  })

  it('puts any thrown value on the wire with a name', () => {
    expect(toWireError(new RoomFullError('b', 1))).toEqual({ name: 'RoomFullError', message: 'room b has no free seat of 1', fields: { room: 'b', seats: 1 } })
    expect(toWireError(new TypeError('bad'))).toEqual({ name: 'TypeError', message: 'bad', fields: {} })
    expect(toWireError('text')).toEqual({ name: 'Error', message: 'text', fields: {} })
  })
})
