/**
 * policy_store's entry and zome-function types, shared by its zomes and its typed client.
 */
import type { ActionHash } from '../hdk/index.ts'

/** The input of `policies.set_policy`: a named policy document of a kind (`moe`, `access`, …). */
export interface PolicyInput { name: string, kind: string, document: Record<string, unknown> }

/** A publication as `policies.get_policy` returns it: the newest under its name. */
export interface PublishedPolicy extends PolicyInput { version: number, author: string, published_at: number, action_hash: ActionHash }

/** A policy name: 1-64 lowercase letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export const POLICY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/
