import { ProcessPool } from '../pool.ts'
import { COMPLIANCE_WORKER, computePoolCompliance, type CompliancePool } from './pool.compliance.ts'

computePoolCompliance('ProcessPool', {
  setup: async ({ logger }) => new ProcessPool({ module: COMPLIANCE_WORKER, name: 'compliance', resourceLimits: { maxOldGenerationSizeMb: 64 } }, { logger }) as CompliancePool,
  teardown: async (pool) => { await pool.dispose() }
}, { movesBuffers: false })
