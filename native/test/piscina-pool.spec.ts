import { PiscinaPool } from '../pool.ts'
import { COMPLIANCE_WORKER, computePoolCompliance, type CompliancePool } from './pool.compliance.ts'

computePoolCompliance('PiscinaPool', {
  setup: async ({ logger }) => new PiscinaPool({ module: COMPLIANCE_WORKER, name: 'compliance', maxThreads: 1, resourceLimits: { maxOldGenerationSizeMb: 64 } }, { logger }) as CompliancePool,
  teardown: async (pool) => { await pool.dispose() }
}, { movesBuffers: true })
