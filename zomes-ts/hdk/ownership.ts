/**
 * A validation rule shared by integrity zomes whose entries belong to their author: app entries
 * must be maps, and only the author of an entry may update or delete it; only the creator of a
 * link may delete it.
 */
import type { Op, ValidateContext, ValidateResult } from './index.ts'
import { Invalid, Valid, bytesEqual } from './index.ts'

export function validateOwnership (op: Op, ctx: ValidateContext): ValidateResult {
  const d = op.action.data
  const author = op.action.header.author.subarray(0, 35)
  const authorOf = (hash: Uint8Array): Uint8Array => ctx.must_get_action(hash).hashed.content.header.author.subarray(0, 35)
  switch (d.type) {
    case 'Create':
    case 'Update': {
      if (op.app_entry !== undefined) {
        const v = op.app_entry.value
        if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return Invalid(`${op.app_entry.entry_type} must be a map`)
      }
      if (d.type === 'Update' && !bytesEqual(authorOf(d.original_action_address), author)) return Invalid('only the author of an entry may update it')
      return Valid
    }
    case 'Delete':
      return bytesEqual(authorOf(d.deletes_address), author) ? Valid : Invalid('only the author of an entry may delete it')
    case 'DeleteLink':
      return bytesEqual(authorOf(d.link_add_address), author) ? Valid : Invalid('only the creator of a link may delete it')
    default:
      return Valid
  }
}
